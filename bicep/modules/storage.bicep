// The one storage account: uploads, tiles, results, quarantine, the Functions host (AzureWebJobsStorage,
// Durable Task hub), the Flex Consumption deployment package, the pipeline's queues and tables.
// Shared keys are disabled: every client authenticates with Entra ID (managed identity or the deployer).

@description('Azure region.')
param location string

@description('Tags applied to every resource.')
param tags object

@description('Storage account name (3-24 lowercase letters and digits).')
@minLength(3)
@maxLength(24)
param accountName string

@description('Replication SKU.')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_GZRS'
])
param skuName string = 'Standard_LRS'

@description('Days after which raw uploads in ct-uploads are deleted by lifecycle management (the pipeline deletes them earlier, once de-identified outputs are durable).')
@minValue(1)
@maxValue(365)
param uploadRetentionDays int

// The retention of every other container follows from what reads it (docs/compliance/phi-flow.md, "Data lifecycle").
// Lifecycle management counts from a blob's last write and runs about once a day, so a blob goes a day or so after
// its retention at the earliest, never before it.
@description('Days after which lifecycle management deletes what slices holds: de-identified tiles, series manifests and the upload read lists (upload-read.json). At least uploadRetentionDays.')
@minValue(1)
@maxValue(365)
param tileRetentionDays int

@description('Days after which lifecycle management deletes rejected, failed and not-screened originals in quarantine (PHI, under their upload names) with their reason.json; 0 keeps them until an operator deletes them.')
@minValue(0)
@maxValue(365)
param quarantineRetentionDays int

@description('Days after which lifecycle management deletes the queue messages the pipeline dead-lettered (dead-letters: ids, blob paths by study id and the reason; no PHI).')
@minValue(1)
@maxValue(365)
param deadLetterRetentionDays int

@description('Days deleted blobs stay recoverable (soft delete).')
@minValue(1)
@maxValue(365)
param blobSoftDeleteDays int = 7

@description('Upload container (raw studies; Event Grid BlobCreated source).')
param uploadContainerName string

@description('Container of de-identified tiles and series manifests.')
param sliceContainerName string

@description('Container of masks, overlays and reports.')
param resultContainerName string

@description('Container receiving events Event Grid could not deliver.')
param eventGridDeadLetterContainerName string

@description('Storage queue carrying chunk results back to the Function app.')
param resultQueueName string

@description('Container holding the Flex Consumption deployment package.')
param deploymentContainerName string

@description('Name of the Function app identity.')
param functionIdentityName string

@description('Name of the scorer identity.')
param scorerIdentityName string

@description('How chunk results travel from the scorer back to the Function app. StorageQueue grants the scorer send-only on the slice-results Storage queue.')
@allowed([
  'StorageQueue'
  'ServiceBus'
])
param resultTransport string

// WARNING: names shared with the code (CovidFunctions.Pipeline); renaming one strands stored data.
var quarantineContainerName = 'quarantine'
// The Function app's DeadLetterWriter stores refused slice-results messages here with their reason.
var deadLetterContainerName = 'dead-letters'
var containerNames = [
  uploadContainerName
  sliceContainerName
  resultContainerName
  quarantineContainerName
  deadLetterContainerName
  eventGridDeadLetterContainerName
  deploymentContainerName
]
// Storage-queue transport: used by the local host (Azurite) and, in Azure with resultTransport StorageQueue
// (the default), for chunk results back to the Function app (a Storage-queue trigger). The -poison queues are where the Functions queue trigger moves
// messages after maxDequeueCount; the scorer's Storage transport uses the same convention.
var queueNames = [
  'slice-chunks'
  'slice-chunks-poison'
  resultQueueName
  'slice-results-poison'
]
var tableNames = [
  'Studies'
  'SliceResults'
  'Usage'
  'WebhookSubscriptions'
  'WebhookDeliveries'
  'ApiKeys'
  'RateLimits'
]

// Built-in role definition IDs (https://learn.microsoft.com/azure/role-based-access-control/built-in-roles).
var storageBlobDataOwnerRoleId = 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
var storageBlobDataContributorRoleId = 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
var storageBlobDataReaderRoleId = '2a2b9908-6ea1-4ae2-8e65-a410df84e7d1'
var storageQueueDataContributorRoleId = '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
var storageQueueDataMessageSenderRoleId = 'c6a89b2d-59bc-44d0-9896-0f6e12d7b80a'
var storageTableDataContributorRoleId = '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
var storageTableDataReaderRoleId = '76199698-9eea-4c19-bc75-cec21354c6b6'

resource functionIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2024-11-30' existing = {
  name: functionIdentityName
}

resource scorerIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2024-11-30' existing = {
  name: scorerIdentityName
}

resource account 'Microsoft.Storage/storageAccounts@2025-06-01' = {
  name: accountName
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: skuName
  }
  properties: {
    accessTier: 'Hot'
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false
    allowCrossTenantReplication: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
    encryption: {
      keySource: 'Microsoft.Storage'
      requireInfrastructureEncryption: true
      services: {
        blob: {
          enabled: true
          keyType: 'Account'
        }
        file: {
          enabled: true
          keyType: 'Account'
        }
        queue: {
          enabled: true
          keyType: 'Account'
        }
        table: {
          enabled: true
          keyType: 'Account'
        }
      }
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2025-06-01' = {
  parent: account
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: blobSoftDeleteDays
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: blobSoftDeleteDays
    }
  }
}

resource containers 'Microsoft.Storage/storageAccounts/blobServices/containers@2025-06-01' = [
  for name in containerNames: {
    parent: blobService
    name: name
    properties: {
      publicAccess: 'None'
    }
  }
]

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2025-06-01' = {
  parent: account
  name: 'default'
}

resource queues 'Microsoft.Storage/storageAccounts/queueServices/queues@2025-06-01' = [
  for name in queueNames: {
    parent: queueService
    name: name
  }
]

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2025-06-01' = {
  parent: account
  name: 'default'
}

resource tables 'Microsoft.Storage/storageAccounts/tableServices/tables@2025-06-01' = [
  for name in tableNames: {
    parent: tableService
    name: name
  }
]

// What each rule deletes, and why its default cannot delete what the pipeline still needs:
// - ct-uploads: raw uploads (PHI). The pipeline deletes an upload once its study's results are stored (or quarantines
//   it); this rule deletes whatever it left behind (an upload never ingested, a study that never settled).
// - eventgrid-deadletter: BlobCreated events Event Grid gave up on after 24 h. Each names an upload (blob URL and
//   subject: the uploader's names, so PHI) and is of use only while that upload can still be in ct-uploads, so it goes
//   after uploadRetentionDays too, counted from its own write, which comes after the upload's.
// - slices: tiles are read only while their study is in flight (the scorer, and AggregateStudy for the montage); the
//   watchdog fails a study still processing Pipeline__StuckStudyAge (6 h) after ingest, and nothing re-scores a
//   settled study. upload-read.json next to the tiles is read when the upload is settled: it must outlive every
//   upload blob it lists, which the ct-uploads rule deletes uploadRetentionDays after the upload was written, before
//   ingest wrote the list. Hence at least uploadRetentionDays (the deployment fails otherwise); 30 by default.
// - quarantine: originals kept for an operator (PHI under the upload names). The pipeline never reads skipped/ or
//   original/ back; it reads a study's reason.json only for a late re-delivery of its upload (Event Grid retries
//   for 24 h). 0 disables the rule for operators who manage quarantine themselves.
// - dead-letters: refused chunk messages, read by no code, kept for diagnosis.
// - results (masks, overlays, montage, chunk documents): no rule. They are what the results API, the HTML report and
//   the FHIR report read for as long as the study's Studies row exists, and nothing deletes rows.
resource lifecycle 'Microsoft.Storage/storageAccounts/managementPolicies@2025-06-01' = {
  parent: account
  name: 'default'
  properties: {
    policy: {
      rules: [
        {
          name: 'delete-raw-uploads'
          enabled: true
          type: 'Lifecycle'
          definition: {
            filters: {
              blobTypes: [
                'blockBlob'
                'appendBlob'
              ]
              prefixMatch: [
                '${uploadContainerName}/'
              ]
            }
            actions: {
              baseBlob: {
                delete: {
                  daysAfterModificationGreaterThan: uploadRetentionDays
                }
              }
              snapshot: {
                delete: {
                  daysAfterCreationGreaterThan: uploadRetentionDays
                }
              }
            }
          }
        }
        {
          name: 'delete-eventgrid-dead-letters'
          enabled: true
          type: 'Lifecycle'
          definition: {
            filters: {
              blobTypes: [
                'blockBlob'
                'appendBlob'
              ]
              prefixMatch: [
                '${eventGridDeadLetterContainerName}/'
              ]
            }
            actions: {
              baseBlob: {
                delete: {
                  daysAfterModificationGreaterThan: uploadRetentionDays
                }
              }
              snapshot: {
                delete: {
                  daysAfterCreationGreaterThan: uploadRetentionDays
                }
              }
            }
          }
        }
        {
          name: 'delete-tiles'
          enabled: true
          type: 'Lifecycle'
          definition: {
            filters: {
              blobTypes: [
                'blockBlob'
                'appendBlob'
              ]
              prefixMatch: [
                '${sliceContainerName}/'
              ]
            }
            actions: {
              baseBlob: {
                delete: {
                  daysAfterModificationGreaterThan: tileRetentionDays >= uploadRetentionDays
                    ? tileRetentionDays
                    : fail('tileRetentionDays must be at least uploadRetentionDays: the upload read lists in slices must outlive the uploads they list')
                }
              }
              snapshot: {
                delete: {
                  daysAfterCreationGreaterThan: tileRetentionDays
                }
              }
            }
          }
        }
        {
          name: 'delete-quarantine'
          // A disabled rule still needs a valid day count: 1 stands in for 0, which turns the rule off.
          enabled: quarantineRetentionDays > 0
          type: 'Lifecycle'
          definition: {
            filters: {
              blobTypes: [
                'blockBlob'
                'appendBlob'
              ]
              prefixMatch: [
                '${quarantineContainerName}/'
              ]
            }
            actions: {
              baseBlob: {
                delete: {
                  daysAfterModificationGreaterThan: max(quarantineRetentionDays, 1)
                }
              }
              snapshot: {
                delete: {
                  daysAfterCreationGreaterThan: max(quarantineRetentionDays, 1)
                }
              }
            }
          }
        }
        {
          name: 'delete-dead-letters'
          enabled: true
          type: 'Lifecycle'
          definition: {
            filters: {
              blobTypes: [
                'blockBlob'
                'appendBlob'
              ]
              prefixMatch: [
                '${deadLetterContainerName}/'
              ]
            }
            actions: {
              baseBlob: {
                delete: {
                  daysAfterModificationGreaterThan: deadLetterRetentionDays
                }
              }
              snapshot: {
                delete: {
                  daysAfterCreationGreaterThan: deadLetterRetentionDays
                }
              }
            }
          }
        }
      ]
    }
  }
}

resource sliceContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2025-06-01' existing = {
  parent: blobService
  name: sliceContainerName
}

resource resultContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2025-06-01' existing = {
  parent: blobService
  name: resultContainerName
}

resource resultQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2025-06-01' existing = {
  parent: queueService
  name: resultQueueName
}

// The scorer upserts the per-slice rows of each chunk it scores (SliceResults); the only table it writes.
resource sliceResultsTable 'Microsoft.Storage/storageAccounts/tableServices/tables@2025-06-01' existing = {
  parent: tableService
  name: 'SliceResults'
}

// The scorer reads a study's row to skip chunks of a study that has already ended (ScoringHandler); read only.
resource studiesTable 'Microsoft.Storage/storageAccounts/tableServices/tables@2025-06-01' existing = {
  parent: tableService
  name: 'Studies'
}

// Function app: the Functions host (AzureWebJobsStorage) creates its own containers, queues and tables
// (host locks, blob receipts, Durable Task hub), so these three roles are needed on the account itself.
resource functionBlobOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(account.id, functionIdentity.id, storageBlobDataOwnerRoleId)
  scope: account
  properties: {
    principalId: functionIdentity.properties.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataOwnerRoleId)
  }
}

resource functionQueueContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(account.id, functionIdentity.id, storageQueueDataContributorRoleId)
  scope: account
  properties: {
    principalId: functionIdentity.properties.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId(
      'Microsoft.Authorization/roleDefinitions',
      storageQueueDataContributorRoleId
    )
  }
}

resource functionTableContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(account.id, functionIdentity.id, storageTableDataContributorRoleId)
  scope: account
  properties: {
    principalId: functionIdentity.properties.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId(
      'Microsoft.Authorization/roleDefinitions',
      storageTableDataContributorRoleId
    )
  }
}

// Scorer: reads tiles and its studies' status rows, writes masks and overlays and its SliceResults rows, posts chunk results. Nothing else in the account.
resource scorerSliceReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(sliceContainer.id, scorerIdentity.id, storageBlobDataReaderRoleId)
  scope: sliceContainer
  properties: {
    principalId: scorerIdentity.properties.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataReaderRoleId)
  }
  dependsOn: [
    containers
  ]
}

resource scorerResultWriter 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(resultContainer.id, scorerIdentity.id, storageBlobDataContributorRoleId)
  scope: resultContainer
  properties: {
    principalId: scorerIdentity.properties.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId(
      'Microsoft.Authorization/roleDefinitions',
      storageBlobDataContributorRoleId
    )
  }
  dependsOn: [
    containers
  ]
}

resource scorerSliceResultsWriter 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(sliceResultsTable.id, scorerIdentity.id, storageTableDataContributorRoleId)
  scope: sliceResultsTable
  properties: {
    principalId: scorerIdentity.properties.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId(
      'Microsoft.Authorization/roleDefinitions',
      storageTableDataContributorRoleId
    )
  }
  dependsOn: [
    tables
  ]
}

resource scorerStudiesReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(studiesTable.id, scorerIdentity.id, storageTableDataReaderRoleId)
  scope: studiesTable
  properties: {
    principalId: scorerIdentity.properties.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageTableDataReaderRoleId)
  }
  dependsOn: [
    tables
  ]
}

resource scorerResultSender 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (resultTransport == 'StorageQueue') {
  name: guid(resultQueue.id, scorerIdentity.id, storageQueueDataMessageSenderRoleId)
  scope: resultQueue
  properties: {
    principalId: scorerIdentity.properties.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId(
      'Microsoft.Authorization/roleDefinitions',
      storageQueueDataMessageSenderRoleId
    )
  }
  dependsOn: [
    queues
  ]
}

output accountName string = account.name
