using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace CovidFunctions.Cli.LocalHost;

/// <summary>
/// What a <c>covidfn up</c> records in its data folder (<c>up.json</c>): its process id, when it started and the options a
/// restart must repeat. The client commands' "not running" message builds the exact restart command from it: the drill's
/// restart with the short <c>covidfn up --data-dir D</c> they suggested came up on the default ports without
/// <c>--allow-loopback-webhooks</c>, and the next webhook to a loopback receiver was dead-lettered (docs/operations.md, 1b).
/// The file stays after <c>up</c> stops; whether that <c>up</c> still runs is told by its lock (<see cref="UpDataDirLock"/>).
/// </summary>
public sealed record UpRecord(
    [property: JsonPropertyName("pid")] int Pid,
    [property: JsonPropertyName("startedAt")] DateTimeOffset StartedAt,
    [property: JsonPropertyName("port")] int? Port,
    [property: JsonPropertyName("apiPort")] int ApiPort,
    [property: JsonPropertyName("allowLoopbackWebhooks")] bool AllowLoopbackWebhooks)
{
    /// <summary>The command that starts <c>up</c> again as it ran (no <c>--port</c> when it ran on a given connection string).</summary>
    public string RestartCommand(string dataDir)
    {
        var command = "covidfn up --data-dir " + Quoted(dataDir);
        if (Port is { } port)
        {
            command += " --port " + port.ToString(CultureInfo.InvariantCulture);
        }

        command += " --api-port " + ApiPort.ToString(CultureInfo.InvariantCulture);
        return AllowLoopbackWebhooks ? command + " --allow-loopback-webhooks" : command;
    }

    // A folder with a space or a quote is quoted for a POSIX shell, so the command can be pasted as printed.
    private static string Quoted(string path) =>
        path.Length > 0 && path.All(c => char.IsAsciiLetterOrDigit(c) || "/._-+:@,=".Contains(c, StringComparison.Ordinal))
            ? path
            : "'" + path.Replace("'", "'\\''", StringComparison.Ordinal) + "'";
}

/// <summary>
/// The lock a running <c>covidfn up</c> holds on its data folder: <c>up.lock</c> open with <see cref="FileShare.None"/>
/// (an exclusive <c>flock</c> on Linux), so a second <c>up</c> on the same folder is refused, naming the first one's pid
/// from <c>up.json</c>. Before, a second <c>up</c> with another <c>--port</c> started a second Azurite over the same
/// <c>D/azurite</c> files (drill). The kernel drops the lock when its process ends however it ends, so a <c>kill -9</c>
/// leaves a file but no stale lock; the file descriptor is close-on-exec, so the Azurite that <c>up</c> starts does not
/// inherit it.
/// </summary>
public sealed class UpDataDirLock : IDisposable
{
    public const string LockFileName = "up.lock";

    public const string RecordFileName = "up.json";

    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true };

    private readonly FileStream _lock;
    private readonly string _dataDir;

    private UpDataDirLock(FileStream fileLock, string dataDir)
    {
        _lock = fileLock;
        _dataDir = dataDir;
    }

    /// <summary>
    /// Takes the lock of <paramref name="dataDir"/> (created if missing), or returns null when another process holds it.
    /// A holder can be a client command probing it (<see cref="IsHeld"/>) for a moment, so a refusal is retried for a
    /// second before it is believed.
    /// </summary>
    public static UpDataDirLock? TryAcquire(string dataDir)
    {
        Directory.CreateDirectory(dataDir);
        var path = Path.Combine(dataDir, LockFileName);
        for (var attempt = 0; ; attempt++)
        {
            try
            {
                return new UpDataDirLock(new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None), dataDir);
            }
            catch (IOException) when (attempt < 4)
            {
                Thread.Sleep(250);
            }
            catch (IOException)
            {
                return null;
            }
        }
    }

    /// <summary>True when a process holds the lock of <paramref name="dataDir"/> (a running <c>up</c>).</summary>
    public static bool IsHeld(string dataDir)
    {
        var path = Path.Combine(dataDir, LockFileName);
        if (!File.Exists(path))
        {
            return false;
        }

        try
        {
            // Open with FileMode.Open only: a probe must not create the file, and holds the lock for no longer than this.
            using var probe = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.None);
            return false;
        }
        catch (FileNotFoundException)
        {
            return false;
        }
        catch (IOException)
        {
            return true;
        }
        catch (UnauthorizedAccessException)
        {
            return false;
        }
    }

    /// <summary>The last <c>up</c>'s record in <paramref name="dataDir"/>, or null when there is none or it cannot be read.</summary>
    public static UpRecord? ReadRecord(string dataDir)
    {
        try
        {
            return JsonSerializer.Deserialize<UpRecord>(File.ReadAllText(Path.Combine(dataDir, RecordFileName)), Json);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or JsonException)
        {
            return null;
        }
    }

    /// <summary>Writes this <c>up</c>'s record (through a temporary file and a rename, so a reader never sees half of it).</summary>
    public void Record(UpRecord record)
    {
        var path = Path.Combine(_dataDir, RecordFileName);
        var temp = path + ".tmp";
        File.WriteAllText(temp, JsonSerializer.Serialize(record, Json) + "\n");
        File.Move(temp, path, overwrite: true);
    }

    public void Dispose() => _lock.Dispose();
}
