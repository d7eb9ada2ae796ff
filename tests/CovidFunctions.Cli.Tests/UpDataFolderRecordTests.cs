using System.Diagnostics;
using System.Globalization;
using CovidFunctions.Cli.Commands;
using CovidFunctions.Cli.LocalHost;
using CovidFunctions.Pipeline.Azure.Local;
using CovidFunctions.TestHelpers;

namespace CovidFunctions.Cli.Tests;

/// <summary>
/// What a <c>covidfn up</c> leaves in its data folder for the next one and for the client commands (session-22 incident
/// drill, docs/operations.md "Known gaps"): the lock that refuses a second <c>up</c> on the same folder (two Azurites
/// over one <c>azurite/</c> were seen), and the "not running" message's restart command, which said
/// <c>covidfn up --data-dir D</c> only: followed, <c>up</c> came back on the default ports without
/// <c>--allow-loopback-webhooks</c> and the next webhook was dead-lettered. It also said "not running" while <c>up</c>
/// was alive and only its Azurite had died.
/// </summary>
public sealed class UpDataFolderRecordTests
{
    private static AzuritePorts DeadPorts() => new(TestNetwork.FreePort(), TestNetwork.FreePort(), TestNetwork.FreePort());

    [Fact]
    public async Task NotRunning_message_gives_the_restart_command_with_the_options_up_ran_with()
    {
        using var dir = new TempDirectory();
        var ports = DeadPorts();
        await File.WriteAllTextAsync(Path.Combine(dir.Path, LocalStorage.ConnectionFileName), AzuriteServer.ConnectionStringFor(ports));
        using (var folderLock = UpDataDirLock.TryAcquire(dir.Path)!)
        {
            folderLock.Record(new UpRecord(123456, DateTimeOffset.UtcNow, ports.Blob, 7291, AllowLoopbackWebhooks: true));
        }

        using var output = new StringWriter();
        using var error = new StringWriter();
        var rc = await StatusCommand.RunAsync(null, null, json: false, connection: null, dataDir: dir.Path, output, error, CancellationToken.None);

        Assert.Equal(ExitCodes.InternalError, rc);
        var line = error.ToString();
        Assert.Contains($"the covidfn up of {dir.Path} is not running", line, StringComparison.Ordinal);
        Assert.Contains($"`covidfn up --data-dir {dir.Path} --port {ports.Blob} --api-port 7291 --allow-loopback-webhooks`", line, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_folder_an_older_up_left_without_its_record_gives_the_ports_it_recorded_and_the_loopback_marker()
    {
        using var dir = new TempDirectory();
        var ports = DeadPorts();
        await File.WriteAllTextAsync(Path.Combine(dir.Path, LocalStorage.ConnectionFileName), AzuriteServer.ConnectionStringFor(ports));
        await File.WriteAllTextAsync(Path.Combine(dir.Path, LocalApiServer.UrlFileName), "http://127.0.0.1:7391/\n");
        await File.WriteAllTextAsync(Path.Combine(dir.Path, LocalWebhooks.AllowLoopbackMarker), "set by covidfn up --allow-loopback-webhooks\n");

        var (rc, _, stderr) = CovidfnProcess.Run([], "usage", "--data-dir", dir.Path);

        Assert.Equal(ExitCodes.InternalError, rc);
        Assert.Contains($"`covidfn up --data-dir {dir.Path} --port {ports.Blob} --api-port 7391 --allow-loopback-webhooks`", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_up_that_is_alive_while_its_storage_does_not_answer_is_not_called_not_running()
    {
        using var dir = new TempDirectory();
        var ports = DeadPorts();
        await File.WriteAllTextAsync(Path.Combine(dir.Path, LocalStorage.ConnectionFileName), AzuriteServer.ConnectionStringFor(ports));

        // This test process plays the up: it holds the folder's lock, as a running up does, and recorded its pid.
        using var folderLock = UpDataDirLock.TryAcquire(dir.Path)!;
        folderLock.Record(new UpRecord(Environment.ProcessId, DateTimeOffset.UtcNow, ports.Blob, 7071, AllowLoopbackWebhooks: false));

        var (rc, _, stderr) = CovidfnProcess.Run([], "status", "--data-dir", dir.Path);

        Assert.Equal(ExitCodes.InternalError, rc);
        Assert.Contains($"the covidfn up of {dir.Path} is running (pid {Environment.ProcessId}", stderr, StringComparison.Ordinal);
        Assert.Contains("its storage does not answer", stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("not running", stderr, StringComparison.Ordinal);
    }

    // The second up is given a setting up refuses (checked after the lock): without the lock it stops there at once with
    // exit 2 and that setting's message instead of starting a pipeline, so the test needs no Azurite or models.
    private static readonly (string, string)[] BadSetting = [("Pipeline__StuckStudyAge", "00:10:00")];

    [Fact]
    public void A_second_up_on_a_data_folder_whose_lock_is_held_is_refused_naming_the_holder()
    {
        using var dir = new TempDirectory();
        using var folderLock = UpDataDirLock.TryAcquire(dir.Path)!;
        folderLock.Record(new UpRecord(Environment.ProcessId, DateTimeOffset.UtcNow, 10950, 7291, AllowLoopbackWebhooks: false));

        var (rc, _, stderr) = CovidfnProcess.Run(BadSetting, "up", "--data-dir", dir.Path);

        Assert.Equal(ExitCodes.BadInput, rc);
        Assert.Contains($"another covidfn up (pid {Environment.ProcessId}", stderr, StringComparison.Ordinal);
        Assert.Contains($"kill -TERM {Environment.ProcessId}", stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("Pipeline__StuckStudyAge", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_lock_holder_killed_with_sigkill_leaves_no_stale_lock()
    {
        using var dir = new TempDirectory();

        // Another process takes the same exclusive lock (flock(1), as .NET's FileShare.None does on Linux), then is
        // killed with SIGKILL, leaving up.lock and an up.json naming it behind. -o: the lock is flock's own, not
        // inherited by its command (sleep), as up's is not by the Azurite it starts.
        using var holder = Process.Start("flock", ["-o", "-x", Path.Combine(dir.Path, UpDataDirLock.LockFileName), "sleep", "600"])!;
        try
        {
            await File.WriteAllTextAsync(Path.Combine(dir.Path, UpDataDirLock.RecordFileName),
                string.Create(CultureInfo.InvariantCulture, $"{{\"pid\": {holder.Id}, \"startedAt\": \"2026-11-28T16:00:00+00:00\", \"port\": 10950, \"apiPort\": 7291, \"allowLoopbackWebhooks\": false}}\n"));
            await WaitUntilHeldAsync(dir.Path);

            var (heldRc, _, heldErr) = CovidfnProcess.Run(BadSetting, "up", "--data-dir", dir.Path);
            Assert.Equal(ExitCodes.BadInput, heldRc);
            Assert.Contains($"another covidfn up (pid {holder.Id}", heldErr, StringComparison.Ordinal);
        }
        finally
        {
            var children = ChildrenOf(holder.Id);
            holder.Kill();
            await holder.WaitForExitAsync();
            foreach (var child in children)
            {
                using var sleep = Process.GetProcessById(child);
                sleep.Kill();
            }
        }

        Assert.True(File.Exists(Path.Combine(dir.Path, UpDataDirLock.LockFileName)));
        var (rc, _, stderr) = CovidfnProcess.Run(BadSetting, "up", "--data-dir", dir.Path);

        // Past the lock: up went on to its settings and refused the bad one, not the folder.
        Assert.Equal(ExitCodes.BadInput, rc);
        Assert.DoesNotContain("another covidfn up", stderr, StringComparison.Ordinal);
        Assert.Contains("Pipeline__StuckStudyAge", stderr, StringComparison.Ordinal);
    }

    private static int[] ChildrenOf(int pid)
    {
        var path = $"/proc/{pid}/task/{pid}/children";
        return File.Exists(path)
            ? File.ReadAllText(path).Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(p => int.Parse(p, CultureInfo.InvariantCulture)).ToArray()
            : [];
    }

    private static async Task WaitUntilHeldAsync(string dataDir)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(1));
        while (!UpDataDirLock.IsHeld(dataDir))
        {
            await Task.Delay(50, timeout.Token);
        }
    }

    [Theory]
    [InlineData("/srv/covidfn-data", "covidfn up --data-dir /srv/covidfn-data --port 10950 --api-port 7291")]
    [InlineData("/srv/covid data", "covidfn up --data-dir '/srv/covid data' --port 10950 --api-port 7291")]
    public void The_restart_command_can_be_pasted_into_a_shell(string dataDir, string expected) =>
        Assert.Equal(expected, new UpRecord(1, DateTimeOffset.UtcNow, 10950, 7291, AllowLoopbackWebhooks: false).RestartCommand(dataDir));
}
