using CovidFunctions.Pipeline.Notifications;

namespace CovidFunctions.Pipeline.Tests.Notifications;

/// <summary>
/// The local secret file (<see cref="FileWebhookSecretStore"/>, what <c>covidfn up</c> and <c>covidfn webhooks</c> use)
/// on a real file system: a failed write leaves no copy of the secrets beside it, a copy a killed writer left is never
/// read as the store and goes with the next write, and a file that does not read is named and left as it is.
/// </summary>
public sealed class FileWebhookSecretStoreTests
{
    private const string Secret = "whsec_kept_0123456789abcdef";
    private static readonly CancellationToken None = CancellationToken.None;

    [Fact]
    public async Task A_write_that_fails_deletes_its_temp_file_which_holds_the_secrets()
    {
        using var temp = TestHelpers.TestData.CreateTempDirectory();
        var store = new FileWebhookSecretStore(temp.Path);

        // The store's path taken by a folder: the temp file is written in full, and replacing the store with it fails.
        Directory.CreateDirectory(store.FilePath);

        await Assert.ThrowsAnyAsync<IOException>(() => store.SetAsync("webhook-alpha-wh0123", Secret, None));

        Assert.Empty(Directory.GetFiles(temp.Path));
        Assert.Empty(Directory.EnumerateFileSystemEntries(store.FilePath));
    }

    [Fact]
    public async Task A_temp_file_a_killed_writer_left_is_not_read_as_the_store_and_the_next_write_deletes_it_but_not_a_write_in_flight()
    {
        using var temp = TestHelpers.TestData.CreateTempDirectory();
        var store = new FileWebhookSecretStore(temp.Path);
        await store.SetAsync("webhook-alpha-a", Secret, None);

        // What a process killed between writing its temp file and the rename leaves (an hour ago), and another
        // process's write in flight (now): both copies of the secrets, under the names the store gives them.
        var stale = store.FilePath + "." + Guid.NewGuid().ToString("N") + ".tmp";
        var inFlight = store.FilePath + "." + Guid.NewGuid().ToString("N") + ".tmp";
        await File.WriteAllTextAsync(stale, """{"webhook-alpha-stale":"whsec_stale_0123456789abcdef"}""");
        File.SetLastWriteTimeUtc(stale, DateTime.UtcNow.AddHours(-1));
        await File.WriteAllTextAsync(inFlight, """{"webhook-alpha-flight":"whsec_flight_0123456789abcdef"}""");

        Assert.Equal(["webhook-alpha-a"], await store.ListNamesAsync("", None));
        Assert.Null(await store.GetAsync("webhook-alpha-stale", None));

        await store.SetAsync("webhook-alpha-b", Secret, None);

        Assert.False(File.Exists(stale), "the killed writer's copy of the secrets is deleted by the next write");
        Assert.True(File.Exists(inFlight), "a young temp file may be another process's write in flight");
        Assert.Equal(["webhook-alpha-a", "webhook-alpha-b"], await store.ListNamesAsync("", None));
    }

    [Fact]
    public async Task A_truncated_file_is_named_with_where_it_stops_reading_never_a_value_and_no_change_writes_over_it()
    {
        using var temp = TestHelpers.TestData.CreateTempDirectory();
        var store = new FileWebhookSecretStore(temp.Path);
        await store.SetAsync("webhook-alpha-a", Secret, None);
        var full = await File.ReadAllTextAsync(store.FilePath);
        var truncated = full[..(full.IndexOf(Secret, StringComparison.Ordinal) + 12)];
        await File.WriteAllTextAsync(store.FilePath, truncated);

        foreach (var call in new Func<Task>[]
        {
            () => store.GetAsync("webhook-alpha-a", None),
            () => store.ListNamesAsync("", None),
            () => store.ListStoredAsync(WebhookIds.SecretNamePrefix, None),
            () => store.SetAsync("webhook-alpha-b", Secret, None),
            () => store.DeleteAsync("webhook-alpha-a", None),
        })
        {
            var refused = await Assert.ThrowsAnyAsync<IOException>(call);
            Assert.Contains(store.FilePath, refused.Message, StringComparison.Ordinal);
            Assert.Contains("at line 1, byte ", refused.Message, StringComparison.Ordinal);
            Assert.DoesNotContain(Secret[..12], refused.Message, StringComparison.Ordinal);
        }

        Assert.Equal(truncated, await File.ReadAllTextAsync(store.FilePath));
        Assert.Empty(Directory.GetFiles(temp.Path, "*.tmp"));
    }
}
