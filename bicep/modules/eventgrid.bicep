// Event Grid system topic on the storage account. Flex Consumption supports only the Event Grid-based
// blob trigger, so BlobCreated events for ct-uploads are pushed to the Function app's blob extension
// webhook. The subscription needs the deployed app's blobs_extension system key, which exists only after
// the code is deployed, so it is created by infra/scripts/postdeploy.sh (or, when that key is passed in,
// by eventgrid-subscription.bicep). The topic's own identity may write dead-lettered events to one container.

@description('Azure region.')
param location string

@description('Tags applied to every resource.')
param tags object

@description('System topic name.')
param topicName string

@description('Storage account name (event source).')
param storageAccountName string

@description('Container that receives events Event Grid could not deliver.')
param deadLetterContainerName string

var storageBlobDataContributorRoleId = 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'

resource account 'Microsoft.Storage/storageAccounts@2025-06-01' existing = {
  name: storageAccountName

  resource blobService 'blobServices' existing = {
    name: 'default'

    resource deadLetterContainer 'containers' existing = {
      name: deadLetterContainerName
    }
  }
}

resource topic 'Microsoft.EventGrid/systemTopics@2025-02-15' = {
  name: topicName
  location: location
  tags: tags
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    source: account.id
    topicType: 'Microsoft.Storage.StorageAccounts'
  }
}

resource topicDeadLetterWriter 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(account::blobService::deadLetterContainer.id, topic.id, storageBlobDataContributorRoleId)
  scope: account::blobService::deadLetterContainer
  properties: {
    principalId: topic.identity.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId(
      'Microsoft.Authorization/roleDefinitions',
      storageBlobDataContributorRoleId
    )
  }
}

output topicName string = topic.name
