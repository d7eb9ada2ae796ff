// CovidFunctions in Azure: one resource group with storage, Event Grid, the Function app (Flex
// Consumption), Service Bus, the GPU scorer on Container Apps, two Key Vaults (the de-identification key,
// read-only to the app, and the webhook subscription secrets it writes), a registry and monitoring.
// Deployed by `azd up` (azure.yaml); docs/deployment.md explains every parameter and role.
// Plain modules only: public-registry (br/public:) modules cannot be restored in this project's CI.
targetScope = 'subscription'

@description('azd environment name; prefixes the resource group and seeds resource names.')
@minLength(1)
@maxLength(40)
param environmentName string

@description('Azure region for every resource (must offer Flex Consumption and Container Apps serverless GPUs).')
param location string

@description('Object ID of the principal running azd (granted Key Vault Secrets Officer so the postdeploy hook can create the de-identification key); empty to skip.')
param principalId string = ''

@description('Type of that principal.')
@allowed([
  'User'
  'ServicePrincipal'
  'Group'
])
param principalType string = 'User'

@description('Serverless GPU profile for the scorer: T4 (16 GB, cheaper) or A100 (80 GB).')
@allowed([
  'Consumption-GPU-NC8as-T4'
  'Consumption-GPU-NC24-A100'
])
param gpuProfileType string = 'Consumption-GPU-NC8as-T4'

@description('Scorer image. azd sets it to the image it built; the default is a public placeholder for the first provision.')
param scorerImage string = 'mcr.microsoft.com/k8se/quickstart:latest'

@description('Most GPU replicas the scorer scales out to (bounded by the subscription GPU quota).')
@minValue(1)
@maxValue(100)
param scorerMaxReplicas int = 4

@description('Active slice-queue messages (chunks) per scorer replica before KEDA adds one.')
@minValue(1)
@maxValue(1000)
param scorerMessagesPerReplica int = 8

// The modules also take 'ServiceBus' (scorer sender and relay roles), but the Function app has no Service Bus
// trigger to relay results with (the Worker Service Bus extension is not available to this build), so a deployment
// may only choose StorageQueue; the app refuses to start with ServiceBus as well.
@description('How chunk results travel from the scorer back to the Function app (a Storage queue the Function app relays).')
@allowed([
  'StorageQueue'
])
param resultTransport string = 'StorageQueue'

@description('Days after which lifecycle management deletes raw uploads left in ct-uploads.')
@minValue(1)
@maxValue(365)
param uploadRetentionDays int = 7

// Tiles are needed only while their study is in flight (at most Pipeline__StuckStudyAge, 6 h, after ingest), and
// the upload read lists beside them must outlive the uploads they list: the storage module refuses less than
// uploadRetentionDays. 30 days leaves failed studies' tiles to look into. docs/compliance/phi-flow.md, "Data lifecycle".
@description('Days after which lifecycle management deletes de-identified tiles, manifests and upload read lists in slices (at least uploadRetentionDays).')
@minValue(1)
@maxValue(365)
param tileRetentionDays int = 30

@description('Days after which lifecycle management deletes rejected, failed and not-screened originals (PHI) in quarantine; 0 keeps them until an operator deletes them.')
@minValue(0)
@maxValue(365)
param quarantineRetentionDays int = 30

@description('Days after which lifecycle management deletes dead-lettered chunk messages in dead-letters.')
@minValue(1)
@maxValue(365)
param deadLetterRetentionDays int = 30

@description('Deliveries of a chunk message before it is dead-lettered (the scorer\'s Scorer__MaxDeliveryCount; the Service Bus queue\'s maxDeliveryCount is one more).')
@minValue(1)
@maxValue(100)
param sliceMaxDeliveryCount int = 5

@description('Peek-lock duration of a chunk message (ISO 8601, 5 s to 5 min): how long a dead scorer replica\'s chunk stays locked before it is delivered again. A live replica renews it while the chunk runs (up to 30 min), so it does not bound a chunk\'s run; 30 s matches the Storage-queue scorer\'s Scorer__MessageLockDuration.')
param sliceLockDuration string = 'PT30S'

@description('Service Bus duplicate-detection window (ISO 8601).')
param duplicateDetectionWindow string = 'PT1H'

@description('Time to live of queued messages (ISO 8601); expired messages are dead-lettered.')
param messageTimeToLive string = 'P1D'

@description('Maximum Function app instances.')
@minValue(1)
@maxValue(1000)
param functionMaximumInstanceCount int = 100

@description('Function app instance memory in MB.')
@allowed([
  512
  2048
  4096
])
param functionInstanceMemoryMB int = 2048

@description('Ports webhook targets may use, comma-separated (Webhooks__AllowedPorts; the Function app refuses to start on anything but a list of ports 1-65535).')
@minLength(1)
param webhookAllowedPorts string = '443'

// What the Function app accepts as Webhooks__AllowedPorts (WebhookOptions.ParseAllowedPorts): comma-separated ports
// 1-65535 in decimal digits, blanks around them and empty entries ignored, at least one. Checked here so a value the app
// would refuse at start-up fails the deployment instead (the functionapp module's parameter); SettingChecksTests runs
// this expression with the Bicep CLI's evaluator against the code. An entry is int() only when it is at most 9 digits:
// int() of anything else would fail with the template engine's message instead of ours.
var webhookAllowedPortsValid = length(filter(split(webhookAllowedPorts, ','), entry => !empty(trim(entry)))) > 0 && empty(filter(
  split(webhookAllowedPorts, ','),
  entry =>
    empty(trim(entry))
      ? false
      : empty(reduce(
            ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'],
            trim(entry),
            (rest, digit) => replace(rest, digit, '')
          )) && length(trim(entry)) <= 9
          ? int(trim(entry)) < 1 || int(trim(entry)) > 65535
          : true
))

@description('Name of the Event Grid-sourced blob-triggered ingest function (the webhook targets it).')
param ingestFunctionName string = 'IngestUpload'

@description('Optional: the full blob-trigger webhook URL including the blobs_extension key. When set, Bicep declares the Event Grid subscription; when empty (the default) infra/scripts/postdeploy.sh creates it.')
@secure()
param blobTriggerWebhookUrl string = ''

var abbreviations = {
  resourceGroup: 'rg-'
  storage: 'st'
  functionPlan: 'plan-'
  functionApp: 'func-'
  identity: 'id-'
  serviceBus: 'sb-'
  keyVault: 'kv-'
  registry: 'cr'
  workspace: 'log-'
  appInsights: 'appi-'
  containerEnvironment: 'cae-'
  containerApp: 'ca-'
  eventGridTopic: 'evgt-'
}
var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = {
  'azd-env-name': environmentName
  application: 'covidfunctions'
}
// Every name is fixed here, before anything deploys, so role assignment names and What-If stay
// deterministic; modules look resources up by these names.
var names = {
  functionIdentity: '${abbreviations.identity}func-${resourceToken}'
  scorerIdentity: '${abbreviations.identity}scorer-${resourceToken}'
  scalerIdentity: '${abbreviations.identity}scaler-${resourceToken}'
  workspace: '${abbreviations.workspace}${resourceToken}'
  appInsights: '${abbreviations.appInsights}${resourceToken}'
  storage: '${abbreviations.storage}${resourceToken}'
  serviceBus: '${abbreviations.serviceBus}${resourceToken}'
  keyVault: '${abbreviations.keyVault}${resourceToken}'
  webhookKeyVault: '${abbreviations.keyVault}wh-${resourceToken}'
  registry: '${abbreviations.registry}${resourceToken}'
  functionPlan: '${abbreviations.functionPlan}${resourceToken}'
  functionApp: '${abbreviations.functionApp}${resourceToken}'
  containerEnvironment: '${abbreviations.containerEnvironment}${resourceToken}'
  scorerApp: '${abbreviations.containerApp}scorer-${resourceToken}'
  eventGridTopic: '${abbreviations.eventGridTopic}${resourceToken}'
}
// Names shared with the code; the Service Bus and Storage queues of the same role share a name.
var sliceQueueName = 'slice-chunks'
var resultQueueName = 'slice-results'
var uploadContainerName = 'ct-uploads'
var sliceContainerName = 'slices'
var resultContainerName = 'results'
var eventGridDeadLetterContainerName = 'eventgrid-deadletter'
var deploymentContainerName = 'app-package-${take(resourceToken, 7)}'

resource rg 'Microsoft.Resources/resourceGroups@2025-04-01' = {
  name: '${abbreviations.resourceGroup}${environmentName}'
  location: location
  tags: tags
}

module identities 'modules/identities.bicep' = {
  name: 'identities'
  scope: rg
  params: {
    location: location
    tags: tags
    functionIdentityName: names.functionIdentity
    scorerIdentityName: names.scorerIdentity
    scalerIdentityName: names.scalerIdentity
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    location: location
    tags: tags
    workspaceName: names.workspace
    appInsightsName: names.appInsights
    functionIdentityName: names.functionIdentity
  }
  dependsOn: [
    identities
  ]
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    location: location
    tags: tags
    accountName: names.storage
    uploadContainerName: uploadContainerName
    sliceContainerName: sliceContainerName
    resultContainerName: resultContainerName
    resultQueueName: resultQueueName
    eventGridDeadLetterContainerName: eventGridDeadLetterContainerName
    uploadRetentionDays: uploadRetentionDays
    tileRetentionDays: tileRetentionDays
    quarantineRetentionDays: quarantineRetentionDays
    deadLetterRetentionDays: deadLetterRetentionDays
    deploymentContainerName: deploymentContainerName
    resultTransport: resultTransport
    functionIdentityName: names.functionIdentity
    scorerIdentityName: names.scorerIdentity
  }
  dependsOn: [
    identities
  ]
}

module serviceBus 'modules/servicebus.bicep' = {
  name: 'servicebus'
  scope: rg
  params: {
    location: location
    tags: tags
    namespaceName: names.serviceBus
    sliceQueueName: sliceQueueName
    resultQueueName: resultQueueName
    maxDeliveryCount: sliceMaxDeliveryCount
    lockDuration: sliceLockDuration
    duplicateDetectionWindow: duplicateDetectionWindow
    messageTimeToLive: messageTimeToLive
    resultTransport: resultTransport
    functionIdentityName: names.functionIdentity
    scorerIdentityName: names.scorerIdentity
    scalerIdentityName: names.scalerIdentity
  }
  dependsOn: [
    identities
  ]
}

module keyVault 'modules/keyvault.bicep' = {
  name: 'keyvault'
  scope: rg
  params: {
    location: location
    tags: tags
    vaultName: names.keyVault
    functionIdentityName: names.functionIdentity
    // Read-only: the app resolves Key Vault references and reads the de-identification key, never writes.
    functionVaultRole: 'SecretsUser'
    deployerPrincipalId: principalId
    deployerPrincipalType: principalType
  }
  dependsOn: [
    identities
  ]
}

// A vault of its own for the per-subscription webhook signing secrets, so the Function app's write access
// (Key Vault Secrets Officer, needed to create and delete them) cannot reach the de-identification key.
// The deployer gets nothing here: the app creates every secret in it at run time.
module webhookKeyVault 'modules/keyvault.bicep' = {
  name: 'webhook-keyvault'
  scope: rg
  params: {
    location: location
    tags: tags
    vaultName: names.webhookKeyVault
    functionIdentityName: names.functionIdentity
    functionVaultRole: 'SecretsOfficer'
    deployerPrincipalId: ''
    deployerPrincipalType: principalType
  }
  dependsOn: [
    identities
  ]
}

module registry 'modules/registry.bicep' = {
  name: 'registry'
  scope: rg
  params: {
    location: location
    tags: tags
    registryName: names.registry
    scorerIdentityName: names.scorerIdentity
  }
  dependsOn: [
    identities
  ]
}

module functionApp 'modules/functionapp.bicep' = {
  name: 'functionapp'
  scope: rg
  params: {
    location: location
    tags: tags
    azdServiceName: 'func'
    planName: names.functionPlan
    appName: names.functionApp
    identityName: names.functionIdentity
    storageAccountName: names.storage
    deploymentContainerName: deploymentContainerName
    appInsightsName: names.appInsights
    serviceBusNamespaceName: names.serviceBus
    sliceQueueName: sliceQueueName
    resultTransport: resultTransport
    vaultName: names.keyVault
    webhookVaultName: names.webhookKeyVault
    maximumInstanceCount: functionMaximumInstanceCount
    instanceMemoryMB: functionInstanceMemoryMB
    // The app refuses to start on anything but a list of ports; refused here, the deployment fails before the site is
    // created or changed, naming the parameter.
    webhookAllowedPorts: webhookAllowedPortsValid
      ? webhookAllowedPorts
      : fail('webhookAllowedPorts (WEBHOOK_ALLOWED_PORTS) must be a comma-separated list of ports 1-65535, as Webhooks__AllowedPorts requires; got \'${webhookAllowedPorts}\'.')
  }
  // The roles first: the host starts with its identity the moment the site exists.
  dependsOn: [
    monitoring
    storage
    serviceBus
    keyVault
    webhookKeyVault
  ]
}

module containerApps 'modules/containerapps.bicep' = {
  name: 'containerapps'
  scope: rg
  params: {
    location: location
    tags: tags
    azdServiceName: 'scorer'
    environmentName: names.containerEnvironment
    appName: names.scorerApp
    gpuProfileType: gpuProfileType
    image: scorerImage
    registryName: names.registry
    maxReplicas: scorerMaxReplicas
    messagesPerReplica: scorerMessagesPerReplica
    workspaceId: monitoring.outputs.workspaceId
    scorerIdentityName: names.scorerIdentity
    scalerIdentityName: names.scalerIdentity
    serviceBusNamespaceName: names.serviceBus
    sliceQueueName: sliceQueueName
    resultQueueName: resultQueueName
    resultTransport: resultTransport
    storageAccountName: names.storage
    sliceContainerName: sliceContainerName
    resultContainerName: resultContainerName
    maxDeliveryCount: sliceMaxDeliveryCount
  }
  // AcrPull and the queue roles must exist before the first revision pulls and scales.
  dependsOn: [
    storage
    serviceBus
    registry
  ]
}

module eventGrid 'modules/eventgrid.bicep' = {
  name: 'eventgrid'
  scope: rg
  params: {
    location: location
    tags: tags
    topicName: names.eventGridTopic
    storageAccountName: names.storage
    deadLetterContainerName: eventGridDeadLetterContainerName
  }
  dependsOn: [
    storage
  ]
}

module eventGridSubscription 'modules/eventgrid-subscription.bicep' = if (!empty(blobTriggerWebhookUrl)) {
  name: 'eventgrid-subscription'
  scope: rg
  params: {
    topicName: names.eventGridTopic
    webhookUrl: blobTriggerWebhookUrl
    uploadContainerName: uploadContainerName
    storageAccountName: names.storage
    deadLetterContainerName: eventGridDeadLetterContainerName
  }
  dependsOn: [
    eventGrid
    functionApp
  ]
}

// Outputs become azd environment values (read by azd deploy and infra/scripts/postdeploy.sh).
// Names and endpoints only: no keys, connection strings or secret values (checked in CI).
output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = subscription().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_CONTAINER_REGISTRY_ENDPOINT string = registry.outputs.loginServer
output AZURE_FUNCTION_APP_NAME string = functionApp.outputs.appName
output AZURE_FUNCTION_APP_HOST string = functionApp.outputs.defaultHostName
output AZURE_STORAGE_ACCOUNT_NAME string = names.storage
output AZURE_UPLOAD_CONTAINER string = uploadContainerName
output AZURE_EVENTGRID_DEADLETTER_CONTAINER string = eventGridDeadLetterContainerName
output AZURE_EVENTGRID_SYSTEM_TOPIC string = eventGrid.outputs.topicName
output AZURE_VAULT_NAME string = keyVault.outputs.vaultName
output AZURE_WEBHOOK_VAULT_URI string = webhookKeyVault.outputs.vaultUri
output AZURE_SERVICEBUS_NAMESPACE string = serviceBus.outputs.fullyQualifiedNamespace
output AZURE_SCORER_APP_NAME string = containerApps.outputs.appName
output INGEST_FUNCTION_NAME string = ingestFunctionName
