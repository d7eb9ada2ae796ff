// Optional path: the BlobCreated subscription declared in Bicep, for pipelines that already hold the
// Function app's blobs_extension key (for example a second `azd provision` after the first deploy, with
// BLOB_TRIGGER_WEBHOOK_URL set to the URL infra/scripts/postdeploy.sh prints the shape of). The URL carries
// the key, so it arrives as one secure parameter, goes only into the endpoint URL (which Event Grid keeps
// write-only) and is never output. The default path is infra/scripts/postdeploy.sh.

@description('Existing system topic name.')
param topicName string

@description('https://<app host>/runtime/webhooks/blobs?functionName=Host.Functions.<ingest function>&code=<blobs_extension key>')
@secure()
param webhookUrl string

@description('Upload container whose BlobCreated events are delivered.')
param uploadContainerName string

@description('Storage account name (dead-letter destination).')
param storageAccountName string

@description('Container that receives undeliverable events.')
param deadLetterContainerName string

resource topic 'Microsoft.EventGrid/systemTopics@2025-02-15' existing = {
  name: topicName
}

resource account 'Microsoft.Storage/storageAccounts@2025-06-01' existing = {
  name: storageAccountName
}

resource subscription 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2025-02-15' = {
  parent: topic
  name: 'ct-uploads-blob-created'
  properties: {
    destination: {
      endpointType: 'WebHook'
      properties: {
        endpointUrl: webhookUrl
        maxEventsPerBatch: 1
        preferredBatchSizeInKilobytes: 64
      }
    }
    eventDeliverySchema: 'EventGridSchema'
    filter: {
      includedEventTypes: [
        'Microsoft.Storage.BlobCreated'
      ]
      subjectBeginsWith: '/blobServices/default/containers/${uploadContainerName}/'
    }
    retryPolicy: {
      maxDeliveryAttempts: 30
      eventTimeToLiveInMinutes: 1440
    }
    deadLetterWithResourceIdentity: {
      identity: {
        type: 'SystemAssigned'
      }
      deadLetterDestination: {
        endpointType: 'StorageBlob'
        properties: {
          resourceId: account.id
          blobContainerName: deadLetterContainerName
        }
      }
    }
  }
}
