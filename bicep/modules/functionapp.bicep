// The Function app on Flex Consumption (Linux, .NET 10 isolated worker). Every connection is
// identity-based: AzureWebJobsStorage, Service Bus and Application Insights use the app's user-assigned
// identity; Key Vault references resolve with the same identity. No keys or connection strings.

@description('Azure region.')
param location string

@description('Tags applied to the plan.')
param tags object

@description('azd service name this app is deployed as (tag azd-service-name).')
param azdServiceName string

@description('Flex Consumption plan name.')
param planName string

@description('Function app name.')
param appName string

@description('Name of the Function app user-assigned identity.')
param identityName string

@description('Storage account name (AzureWebJobsStorage and pipeline data).')
param storageAccountName string

@description('Container holding the deployment package.')
param deploymentContainerName string

@description('Application Insights component name.')
param appInsightsName string

@description('Service Bus namespace name.')
param serviceBusNamespaceName string

@description('Service Bus queue the orchestrator dispatches slice chunks to.')
param sliceQueueName string

@description('How chunk results travel back to the Function app.')
@allowed([
  'StorageQueue'
  'ServiceBus'
])
param resultTransport string

@description('Key Vault name holding the de-identification key (the app identity reads it).')
param vaultName string

@description('Key Vault name for the per-subscription webhook secrets (the app identity writes and deletes them).')
param webhookVaultName string

@description('Maximum instances Flex Consumption scales out to.')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int

@description('Instance memory size in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int

@description('Ports webhook targets may use, comma-separated (Webhooks__AllowedPorts).')
param webhookAllowedPorts string

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2024-11-30' existing = {
  name: identityName
}

resource storageAccount 'Microsoft.Storage/storageAccounts@2025-06-01' existing = {
  name: storageAccountName
}

resource serviceBus 'Microsoft.ServiceBus/namespaces@2026-01-01' existing = {
  name: serviceBusNamespaceName
}

var identityId = identity.id
var identityClientId = identity.properties.clientId
// Host name only (<name>.servicebus.windows.net), read from the resource so no cloud suffix is hard-coded.
var serviceBusFullyQualifiedNamespace = replace(
  replace(serviceBus.properties.serviceBusEndpoint, 'https://', ''),
  ':443/',
  ''
)

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

resource vault 'Microsoft.KeyVault/vaults@2026-02-01' existing = {
  name: vaultName
}

resource webhookVault 'Microsoft.KeyVault/vaults@2026-02-01' existing = {
  name: webhookVaultName
}

resource plan 'Microsoft.Web/serverfarms@2025-03-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    tier: 'FlexConsumption'
    name: 'FC1'
  }
  properties: {
    reserved: true
  }
}

resource app 'Microsoft.Web/sites@2025-03-01' = {
  name: appName
  location: location
  tags: union(tags, { 'azd-service-name': azdServiceName })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    clientCertEnabled: false
    keyVaultReferenceIdentity: identityId
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storageAccount.properties.primaryEndpoints.blob}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      runtime: {
        name: 'dotnet-isolated'
        version: '10.0'
      }
    }
  }
}

// App settings as a child resource so the site exists (and its identity can be granted roles) first.
// Flex Consumption sets the worker runtime from functionAppConfig.runtime: FUNCTIONS_WORKER_RUNTIME and
// FUNCTIONS_EXTENSION_VERSION must not appear here.
resource appSettings 'Microsoft.Web/sites/config@2025-03-01' = {
  parent: app
  name: 'appsettings'
  properties: {
    AzureWebJobsStorage__accountName: storageAccountName
    AzureWebJobsStorage__credential: 'managedidentity'
    AzureWebJobsStorage__clientId: identityClientId
    AZURE_CLIENT_ID: identityClientId
    APPLICATIONINSIGHTS_CONNECTION_STRING: appInsights.properties.ConnectionString
    APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'Authorization=AAD;ClientId=${identityClientId}'
    // The app's Service Bus client authenticates with DefaultAzureCredential (AZURE_CLIENT_ID); no trigger binds
    // to a ServiceBus connection, so __credential/__clientId would be read by nothing.
    ServiceBus__fullyQualifiedNamespace: serviceBusFullyQualifiedNamespace
    Pipeline__SliceQueueName: sliceQueueName
    Pipeline__ResultTransport: resultTransport
    // Time budgets of Azure (docs/deployment.md "Time budgets", measured in docs/benchmarks.md): an upload is ingested
    // inside one invocation bounded by host.json's functionTimeout (60 min, the grace Flex Consumption gives an
    // execution at scale-in). JPEG 2000 input ingests at ~1.1 MiB/s of upload on a loaded core, so 2 GiB takes ~31 min;
    // the code's 4 GiB (~62 min) would outlive the timeout and be retried until the watchdog. TimeBudgetTests.
    Pipeline__MaxUploadBytes: '2147483648'
    // The scorer scales from zero: KEDA's poll, a GPU replica, the CUDA image pull and the startup probe's 300 s
    // window come before the first chunk is scored, so 10 min (the code default) can expire before a cold replica
    // answers and every chunk of the study would be dispatched again. TimeBudgetTests.
    Pipeline__ChunkTimeout: '00:20:00'
    KeyVault__VaultUri: vault.properties.vaultUri
    Webhooks__KeyVaultUri: webhookVault.properties.vaultUri
    // Absolute links in webhook payloads and API views; unset, they would be relative (/api/studies/...), which a
    // receiver cannot follow.
    Webhooks__PublicBaseUrl: 'https://${app.properties.defaultHostName}'
    Webhooks__AllowedPorts: webhookAllowedPorts
    // A Key Vault reference: resolved by the platform with keyVaultReferenceIdentity; the value never
    // appears in the template. The secret is created by infra/scripts/postdeploy.sh.
    Deidentification__HmacKey: '@Microsoft.KeyVault(VaultName=${vault.name};SecretName=deid-hmac-key)'
  }
}

// Publishing with basic (username/password) credentials is off: azd deploys with Entra ID.
resource scmBasicAuth 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2025-03-01' = {
  parent: app
  name: 'scm'
  properties: {
    allow: false
  }
}

resource ftpBasicAuth 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2025-03-01' = {
  parent: app
  name: 'ftp'
  properties: {
    allow: false
  }
}

output appName string = app.name
output defaultHostName string = app.properties.defaultHostName
