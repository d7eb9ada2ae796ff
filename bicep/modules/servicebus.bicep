// Service Bus namespace for the GPU fan-out. Local (SAS) authentication is disabled: senders, receivers
// and the KEDA scaler all use Entra ID. Messages carry blob references (claim-check), never pixels: a
// Standard message is at most 256 KB and one 512x512 int16 slice is already 512 KB.

@description('Azure region.')
param location string

@description('Tags applied to every resource.')
param tags object

@description('Service Bus namespace name.')
param namespaceName string

@description('Queue the orchestrator dispatches slice chunks to and the GPU scorer consumes (KEDA scales on it).')
param sliceQueueName string

@description('Queue for chunk results when resultTransport is ServiceBus.')
param resultQueueName string

@description('Deliveries of a chunk message the scorer allows (Scorer__MaxDeliveryCount); the slice queue allows one more, see sliceQueue.')
@minValue(1)
@maxValue(100)
param maxDeliveryCount int

@description('Peek-lock duration (ISO 8601, at most PT5M); the scorer renews the lock while a chunk runs.')
param lockDuration string

@description('Duplicate-detection window (ISO 8601): a re-sent chunk with the same MessageId inside it is dropped.')
param duplicateDetectionWindow string

@description('Time to live of a message (ISO 8601); expired messages are dead-lettered, not dropped.')
param messageTimeToLive string

@description('How chunk results travel back to the Function app; ServiceBus grants send/receive on the result queue.')
@allowed([
  'StorageQueue'
  'ServiceBus'
])
param resultTransport string

@description('Name of the Function app identity.')
param functionIdentityName string

@description('Name of the scorer identity.')
param scorerIdentityName string

@description('Name of the identity the KEDA scaler uses to read the slice queue length.')
param scalerIdentityName string

var serviceBusDataSenderRoleId = '69a216fc-b8fb-44d8-bc22-1f3c2cd27a39'
var serviceBusDataReceiverRoleId = '4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0'
// KEDA's azure-servicebus scaler reads the message count through the management API, which needs the
// Manage claim; Data Owner is the only built-in role carrying it. Scoped to the slice queue only.
var serviceBusDataOwnerRoleId = '090c5cfd-751d-490a-894a-3ce6f1109419'

resource functionIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2024-11-30' existing = {
  name: functionIdentityName
}

resource scorerIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2024-11-30' existing = {
  name: scorerIdentityName
}

resource scalerIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2024-11-30' existing = {
  name: scalerIdentityName
}

resource namespace 'Microsoft.ServiceBus/namespaces@2026-01-01' = {
  name: namespaceName
  location: location
  tags: tags
  sku: {
    name: 'Standard'
    tier: 'Standard'
  }
  properties: {
    disableLocalAuth: true
    minimumTlsVersion: '1.2'
    publicNetworkAccess: 'Enabled'
  }
}

resource sliceQueue 'Microsoft.ServiceBus/namespaces/queues@2026-01-01' = {
  parent: namespace
  name: sliceQueueName
  properties: {
    requiresSession: false
    requiresDuplicateDetection: true
    duplicateDetectionHistoryTimeWindow: duplicateDetectionWindow
    // One more than the scorer's Scorer__MaxDeliveryCount (this same parameter): a chunk the scorer process died on at
    // every allowed delivery reaches the scorer once more, which dead-letters it itself and answers its study with an
    // error result (ChunkDeadLetterHook). At the scorer's own count the broker would dead-letter it and tell nobody.
    maxDeliveryCount: maxDeliveryCount + 1
    lockDuration: lockDuration
    deadLetteringOnMessageExpiration: true
    defaultMessageTimeToLive: messageTimeToLive
    enablePartitioning: false
    enableBatchedOperations: true
    maxSizeInMegabytes: 1024
  }
}

resource resultQueue 'Microsoft.ServiceBus/namespaces/queues@2026-01-01' = {
  parent: namespace
  name: resultQueueName
  properties: {
    requiresSession: false
    requiresDuplicateDetection: true
    duplicateDetectionHistoryTimeWindow: duplicateDetectionWindow
    maxDeliveryCount: maxDeliveryCount
    lockDuration: 'PT1M'
    deadLetteringOnMessageExpiration: true
    defaultMessageTimeToLive: messageTimeToLive
    enablePartitioning: false
    enableBatchedOperations: true
    maxSizeInMegabytes: 1024
  }
}

resource functionSliceSender 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(sliceQueue.id, functionIdentity.id, serviceBusDataSenderRoleId)
  scope: sliceQueue
  properties: {
    principalId: functionIdentity.properties.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', serviceBusDataSenderRoleId)
  }
}

resource scorerSliceReceiver 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(sliceQueue.id, scorerIdentity.id, serviceBusDataReceiverRoleId)
  scope: sliceQueue
  properties: {
    principalId: scorerIdentity.properties.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', serviceBusDataReceiverRoleId)
  }
}

resource scalerSliceOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(sliceQueue.id, scalerIdentity.id, serviceBusDataOwnerRoleId)
  scope: sliceQueue
  properties: {
    principalId: scalerIdentity.properties.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', serviceBusDataOwnerRoleId)
  }
}

resource scorerResultSender 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (resultTransport == 'ServiceBus') {
  name: guid(resultQueue.id, scorerIdentity.id, serviceBusDataSenderRoleId)
  scope: resultQueue
  properties: {
    principalId: scorerIdentity.properties.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', serviceBusDataSenderRoleId)
  }
}

resource functionResultReceiver 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (resultTransport == 'ServiceBus') {
  name: guid(resultQueue.id, functionIdentity.id, serviceBusDataReceiverRoleId)
  scope: resultQueue
  properties: {
    principalId: functionIdentity.properties.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', serviceBusDataReceiverRoleId)
  }
}

output namespaceName string = namespace.name
// Host name only (<name>.servicebus.windows.net), read from the resource so no cloud suffix is hard-coded.
output fullyQualifiedNamespace string = replace(
  replace(namespace.properties.serviceBusEndpoint, 'https://', ''),
  ':443/',
  ''
)
output sliceQueueName string = sliceQueue.name
output resultQueueName string = resultQueue.name
