// Container Apps environment with a serverless GPU workload profile, and the scorer app on it. The scorer
// scales from zero on the slice queue's depth (KEDA azure-servicebus scaler, authenticated with a managed
// identity, no connection string), so an idle deployment pays for no GPU time.

@description('Azure region (serverless GPUs exist in a subset of regions; see docs/deployment.md).')
param location string

@description('Tags applied to the environment.')
param tags object

@description('azd service name this app is deployed as (tag azd-service-name).')
param azdServiceName string

@description('Container Apps environment name.')
param environmentName string

@description('Scorer container app name.')
param appName string

@description('Serverless GPU workload profile type.')
@allowed([
  'Consumption-GPU-NC8as-T4'
  'Consumption-GPU-NC24-A100'
])
param gpuProfileType string

@description('Scorer image; azd replaces it with the image it builds from infra/scorer/Dockerfile.')
param image string

@description('Registry the scorer pulls from with its identity.')
param registryName string

@description('Most GPU replicas the scorer scales out to.')
@minValue(1)
@maxValue(100)
param maxReplicas int

@description('Active slice-queue messages per replica before KEDA adds one (each message is one chunk).')
@minValue(1)
param messagesPerReplica int

@description('Log Analytics workspace resource ID (environment logs via diagnostic settings, no shared key).')
param workspaceId string

@description('Name of the scorer identity (pulls the image, reads the queue, writes results).')
param scorerIdentityName string

@description('Name of the identity the KEDA scale rule authenticates with.')
param scalerIdentityName string

@description('Service Bus namespace name (the KEDA scaler metadata).')
param serviceBusNamespaceName string

@description('Service Bus queue carrying slice chunks.')
param sliceQueueName string

@description('Queue carrying chunk results back (Storage or Service Bus, see resultTransport).')
param resultQueueName string

@description('How chunk results travel back to the Function app.')
@allowed([
  'StorageQueue'
  'ServiceBus'
])
param resultTransport string

@description('Storage account name (tiles, results, result queue).')
param storageAccountName string

@description('Container with de-identified tiles.')
param sliceContainerName string

@description('Container the scorer writes masks and overlays to.')
param resultContainerName string

@description('Deliveries of a chunk message before the scorer gives up on it (the slice queue allows one more), so the scorer answers the last delivery with an error result.')
param maxDeliveryCount int

// One serverless GPU replica gets the whole card and this share of the node (Container Apps limits).
var gpuReplicaResources = {
  'Consumption-GPU-NC8as-T4': {
    cpu: 8
    memory: '56Gi'
  }
  'Consumption-GPU-NC24-A100': {
    cpu: 24
    memory: '220Gi'
  }
}
var gpuProfileName = 'gpu'
var healthPort = 8080

resource scorerIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2024-11-30' existing = {
  name: scorerIdentityName
}

resource scalerIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2024-11-30' existing = {
  name: scalerIdentityName
}

resource storageAccount 'Microsoft.Storage/storageAccounts@2025-06-01' existing = {
  name: storageAccountName
}

resource serviceBus 'Microsoft.ServiceBus/namespaces@2026-01-01' existing = {
  name: serviceBusNamespaceName
}

resource registry 'Microsoft.ContainerRegistry/registries@2025-11-01' existing = {
  name: registryName
}

var scorerIdentityId = scorerIdentity.id
var scalerIdentityId = scalerIdentity.id
var scorerIdentityClientId = scorerIdentity.properties.clientId
var serviceBusFullyQualifiedNamespace = replace(
  replace(serviceBus.properties.serviceBusEndpoint, 'https://', ''),
  ':443/',
  ''
)

resource environment 'Microsoft.App/managedEnvironments@2026-01-01' = {
  name: environmentName
  location: location
  tags: tags
  properties: {
    appLogsConfiguration: {
      // azure-monitor + a diagnostic setting: the log-analytics destination would need the workspace's
      // shared key in the template.
      destination: 'azure-monitor'
    }
    workloadProfiles: [
      {
        name: 'Consumption'
        workloadProfileType: 'Consumption'
      }
      {
        name: gpuProfileName
        workloadProfileType: gpuProfileType
      }
    ]
    zoneRedundant: false
  }
}

resource environmentLogs 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: environment
  properties: {
    workspaceId: workspaceId
    logs: [
      {
        categoryGroup: 'allLogs'
        enabled: true
      }
    ]
  }
}

resource scorer 'Microsoft.App/containerApps@2026-01-01' = {
  name: appName
  location: location
  tags: union(tags, { 'azd-service-name': azdServiceName })
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${scorerIdentityId}': {}
      '${scalerIdentityId}': {}
    }
  }
  properties: {
    environmentId: environment.id
    workloadProfileName: gpuProfileName
    configuration: {
      activeRevisionsMode: 'Single'
      // A queue worker: no ingress. Probes reach the container directly.
      registries: [
        {
          server: registry.properties.loginServer
          identity: scorerIdentityId
        }
      ]
    }
    template: {
      // Graceful drain: the scorer stops taking messages on SIGTERM and abandons nothing it can finish.
      terminationGracePeriodSeconds: 120
      containers: [
        {
          name: 'scorer'
          image: image
          resources: {
            cpu: gpuReplicaResources[gpuProfileType].cpu
            memory: gpuReplicaResources[gpuProfileType].memory
          }
          env: [
            {
              name: 'AZURE_CLIENT_ID'
              value: scorerIdentityClientId
            }
            {
              name: 'ServiceBus__fullyQualifiedNamespace'
              value: serviceBusFullyQualifiedNamespace
            }
            {
              name: 'Scorer__SliceQueueName'
              value: sliceQueueName
            }
            {
              name: 'Scorer__ResultQueueName'
              value: resultQueueName
            }
            {
              name: 'Scorer__ResultTransport'
              value: resultTransport
            }
            {
              name: 'Scorer__BlobServiceUri'
              value: storageAccount.properties.primaryEndpoints.blob
            }
            {
              name: 'Scorer__QueueServiceUri'
              value: storageAccount.properties.primaryEndpoints.queue
            }
            {
              name: 'Scorer__SliceContainer'
              value: sliceContainerName
            }
            {
              name: 'Scorer__ResultContainer'
              value: resultContainerName
            }
            {
              name: 'Scorer__TableServiceUri'
              value: storageAccount.properties.primaryEndpoints.table
            }
            {
              name: 'Scorer__ExecutionProvider'
              value: 'Cuda'
            }
            {
              name: 'Scorer__HealthPort'
              value: string(healthPort)
            }
            {
              // One less than the Service Bus queue's maxDeliveryCount (servicebus.bicep): the scorer turns the last
              // delivery of a failing chunk into an error result (the study fails at once), and dead-letters a chunk
              // it died on at every delivery when the queue hands it over once more, answering its study the same way.
              name: 'Scorer__MaxDeliveryCount'
              value: string(maxDeliveryCount)
            }
          ]
          probes: [
            {
              // /readyz answers 200 once the models are loaded and a warm-up batch has run (ScorerReadiness), which
              // with the first CUDA inference (cuDNN autotuning) can take tens of seconds; /healthz answers as soon as
              // the host listens, so it would bound nothing. 30 s x 10 = 300 s, then the replica is restarted.
              // Container Apps accepts a failureThreshold of 1-10 and a periodSeconds of 1-240 (30 x 10, not 10 x 30).
              type: 'Startup'
              httpGet: {
                path: '/readyz'
                port: healthPort
              }
              periodSeconds: 30
              failureThreshold: 10
              timeoutSeconds: 5
            }
            {
              type: 'Liveness'
              httpGet: {
                path: '/healthz'
                port: healthPort
              }
              periodSeconds: 30
              failureThreshold: 3
              timeoutSeconds: 5
            }
          ]
        }
      ]
      scale: {
        minReplicas: 0
        maxReplicas: maxReplicas
        cooldownPeriod: 300
        pollingInterval: 15
        rules: [
          {
            name: 'slice-queue-depth'
            custom: {
              type: 'azure-servicebus'
              identity: scalerIdentityId
              metadata: {
                namespace: serviceBusNamespaceName
                queueName: sliceQueueName
                messageCount: string(messagesPerReplica)
                activationMessageCount: '0'
              }
            }
          }
        ]
      }
    }
  }
}

output appName string = scorer.name
output environmentName string = environment.name
