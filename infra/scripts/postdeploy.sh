#!/bin/sh
# azd postdeploy hook (azure.yaml): the two steps that cannot be declared in Bicep.
#
#  1. Key Vault secret. The de-identification HMAC key is generated here, once, from /dev/urandom, and only
#     when missing (rotating it would break pseudonym linkage). The value goes to `az` through a file, never
#     through the command line or the template.
#  2. Event Grid subscription. Flex Consumption only supports the Event Grid-sourced blob trigger, whose
#     webhook needs the function's blobs_extension system key. That key exists only after the code is
#     deployed and the host has started, so the subscription (BlobCreated on ct-uploads) is created here,
#     with the key read from the app and sent in a request body file, never echoed.
#
# Inputs: azd exports the Bicep outputs as environment variables (AZURE_RESOURCE_GROUP, ...).
# Idempotent: re-running updates the subscription in place and leaves existing secrets untouched.
set -eu

: "${AZURE_SUBSCRIPTION_ID:?run through azd (azd up / azd deploy) or export the azd environment}"
: "${AZURE_RESOURCE_GROUP:?}"
: "${AZURE_FUNCTION_APP_NAME:?}"
: "${AZURE_FUNCTION_APP_HOST:?}"
: "${AZURE_STORAGE_ACCOUNT_NAME:?}"
: "${AZURE_UPLOAD_CONTAINER:?}"
: "${AZURE_EVENTGRID_SYSTEM_TOPIC:?}"
: "${AZURE_EVENTGRID_DEADLETTER_CONTAINER:?}"
: "${AZURE_VAULT_NAME:?}"
INGEST_FUNCTION_NAME="${INGEST_FUNCTION_NAME:-IngestUpload}"
# Seconds between retries while RBAC assignments propagate and the host starts; attempts before giving up.
RETRY_SECONDS="${POSTDEPLOY_RETRY_SECONDS:-10}"
RETRY_ATTEMPTS="${POSTDEPLOY_RETRY_ATTEMPTS:-30}"
EVENTGRID_API_VERSION="2025-02-15"
SUBSCRIPTION_NAME="ct-uploads-blob-created"

workdir="$(mktemp -d)"
chmod 700 "$workdir"
trap 'rm -rf "$workdir"' EXIT INT TERM
umask 077

log() {
    printf 'postdeploy: %s\n' "$*" >&2
}

# retry CMD...: runs CMD until it succeeds, RETRY_ATTEMPTS times at most.
retry() {
    attempt=1
    while ! "$@"; do
        if [ "$attempt" -ge "$RETRY_ATTEMPTS" ]; then
            return 1
        fi
        attempt=$((attempt + 1))
        sleep "$RETRY_SECONDS"
    done
}

# ---- 1. secret ----------------------------------------------------------------------------------------
secret_exists() {
    az keyvault secret show --vault-name "$AZURE_VAULT_NAME" --name "$1" --query id --output tsv >/dev/null 2>&1
}

set_secret_from_file() {
    az keyvault secret set --vault-name "$AZURE_VAULT_NAME" --name "$1" --file "$2" --encoding utf-8 \
        --content-type "$3" --output none
}

secret="deid-hmac-key"
if secret_exists "$secret"; then
    log "secret $secret exists; left unchanged"
else
    value_file="$workdir/$secret"
    # 64 random bytes, base64 (no line breaks): 512 bits for the HMAC-SHA256 key.
    head -c 64 /dev/urandom | base64 | tr -d '\n' >"$value_file"
    if ! retry set_secret_from_file "$secret" "$value_file" "application/octet-stream;base64"; then
        log "could not write $secret to $AZURE_VAULT_NAME (does the deployer hold Key Vault Secrets Officer? set AZURE_PRINCIPAL_ID and re-provision)"
        exit 1
    fi
    rm -f "$value_file"
    log "secret $secret created"
    # The app refuses to start while Deidentification__HmacKey is an unresolved Key Vault reference, and the platform
    # resolves references again only on a restart (or daily). Restart now, not after step 2: the blobs_extension key
    # step 2 waits for appears only once the host runs with the worker's functions.
    log "restarting $AZURE_FUNCTION_APP_NAME so its Key Vault reference resolves"
    az functionapp restart --resource-group "$AZURE_RESOURCE_GROUP" --name "$AZURE_FUNCTION_APP_NAME" --output none
fi

# ---- 2. Event Grid subscription -----------------------------------------------------------------------
read_blob_extension_key() {
    key="$(az functionapp keys list --resource-group "$AZURE_RESOURCE_GROUP" --name "$AZURE_FUNCTION_APP_NAME" \
        --query "systemKeys.blobs_extension" --output tsv 2>/dev/null || true)"
    [ -n "$key" ]
}

log "waiting for the blobs_extension key of $AZURE_FUNCTION_APP_NAME (it appears once the host indexes the blob trigger)"
key=""
if ! retry read_blob_extension_key; then
    log "no blobs_extension key: is a blob trigger with Source = BlobTriggerSource.EventGrid deployed as $INGEST_FUNCTION_NAME?"
    exit 1
fi

arm_endpoint="$(az cloud show --query endpoints.resourceManager --output tsv)"
arm_endpoint="${arm_endpoint%/}"
storage_id="/subscriptions/$AZURE_SUBSCRIPTION_ID/resourceGroups/$AZURE_RESOURCE_GROUP/providers/Microsoft.Storage/storageAccounts/$AZURE_STORAGE_ACCOUNT_NAME"
subscription_url="$arm_endpoint/subscriptions/$AZURE_SUBSCRIPTION_ID/resourceGroups/$AZURE_RESOURCE_GROUP/providers/Microsoft.EventGrid/systemTopics/$AZURE_EVENTGRID_SYSTEM_TOPIC/eventSubscriptions/$SUBSCRIPTION_NAME?api-version=$EVENTGRID_API_VERSION"
body_file="$workdir/event-subscription.json"

# The same subscription bicep/modules/eventgrid-subscription.bicep declares. The key sits only in this file.
cat >"$body_file" <<JSON
{
  "properties": {
    "destination": {
      "endpointType": "WebHook",
      "properties": {
        "endpointUrl": "https://$AZURE_FUNCTION_APP_HOST/runtime/webhooks/blobs?functionName=Host.Functions.$INGEST_FUNCTION_NAME&code=$key",
        "maxEventsPerBatch": 1,
        "preferredBatchSizeInKilobytes": 64
      }
    },
    "eventDeliverySchema": "EventGridSchema",
    "filter": {
      "includedEventTypes": ["Microsoft.Storage.BlobCreated"],
      "subjectBeginsWith": "/blobServices/default/containers/$AZURE_UPLOAD_CONTAINER/"
    },
    "retryPolicy": {
      "maxDeliveryAttempts": 30,
      "eventTimeToLiveInMinutes": 1440
    },
    "deadLetterWithResourceIdentity": {
      "identity": { "type": "SystemAssigned" },
      "deadLetterDestination": {
        "endpointType": "StorageBlob",
        "properties": {
          "resourceId": "$storage_id",
          "blobContainerName": "$AZURE_EVENTGRID_DEADLETTER_CONTAINER"
        }
      }
    }
  }
}
JSON
key=""

put_subscription() {
    az rest --method put --url "$subscription_url" --body "@$body_file" --output none
}

# Event Grid validates the webhook synchronously (the blob extension answers the handshake): retry while the
# freshly deployed host warms up.
log "creating or updating Event Grid subscription $SUBSCRIPTION_NAME on $AZURE_EVENTGRID_SYSTEM_TOPIC"
if ! retry put_subscription; then
    log "Event Grid subscription failed; see the Event Grid system topic in the portal"
    exit 1
fi
rm -f "$body_file"

log "done: uploads to $AZURE_STORAGE_ACCOUNT_NAME/$AZURE_UPLOAD_CONTAINER now trigger $INGEST_FUNCTION_NAME"
