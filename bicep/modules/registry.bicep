// Container registry for the scorer image (azd builds and pushes it). No admin user, no anonymous pull:
// the scorer pulls with its managed identity (AcrPull on this registry only).

@description('Azure region.')
param location string

@description('Tags applied to every resource.')
param tags object

@description('Registry name (5-50 letters and digits).')
@minLength(5)
@maxLength(50)
param registryName string

@description('Name of the scorer identity (pulls the image).')
param scorerIdentityName string

var acrPullRoleId = '7f951dda-4ed3-4680-a7ca-43fe172d538d'

resource scorerIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2024-11-30' existing = {
  name: scorerIdentityName
}

resource registry 'Microsoft.ContainerRegistry/registries@2025-11-01' = {
  name: registryName
  location: location
  tags: tags
  sku: {
    name: 'Basic'
  }
  properties: {
    adminUserEnabled: false
    anonymousPullEnabled: false
    publicNetworkAccess: 'Enabled'
  }
}

resource scorerPull 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(registry.id, scorerIdentity.id, acrPullRoleId)
  scope: registry
  properties: {
    principalId: scorerIdentity.properties.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', acrPullRoleId)
  }
}

output registryName string = registry.name
output loginServer string = registry.properties.loginServer
