// User-assigned managed identities, one per workload, so each gets only the roles its own code needs.
// The scale identity exists only for the KEDA azure-servicebus scaler, which needs the Manage claim
// (Azure Service Bus Data Owner) to read the queue's message count; the scorer's own code never needs it.

@description('Azure region.')
param location string

@description('Tags applied to every resource.')
param tags object

@description('Name of the Function app identity.')
param functionIdentityName string

@description('Name of the scorer container identity.')
param scorerIdentityName string

@description('Name of the identity the KEDA scale rule uses to read the slice queue length.')
param scalerIdentityName string

resource functionIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2024-11-30' = {
  name: functionIdentityName
  location: location
  tags: tags
}

resource scorerIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2024-11-30' = {
  name: scorerIdentityName
  location: location
  tags: tags
}

resource scalerIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2024-11-30' = {
  name: scalerIdentityName
  location: location
  tags: tags
}
