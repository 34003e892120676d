using System.Collections.Concurrent;
using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text.RegularExpressions;

namespace Broker.Tests.Shared;

/// <summary>
/// The built node executable (Broker.Edge.dll next to the test assembly) as a separate process on free
/// ports of 127.0.0.1. Stopped only by its own pid: SIGKILL for crash tests, SIGTERM for a clean stop.
/// </summary>
public sealed partial class NodeProcess : IDisposable
{
    private readonly Process _process;
    private readonly ConcurrentQueue<string> _log = new();
    private readonly TaskCompletionSource _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private NodeProcess(Process process)
    {
        _process = process;
    }

    public int Pid => _process.Id;
    public int MqttPort { get; private set; }
    public int AdminPort { get; private set; }
    public int AmqpPort { get; private set; }

    /// <summary>Port of the node's Akka remoting (what other nodes use as a seed).</summary>
    public int RemotePort { get; private set; }

    public string Name { get; private set; } = "";

    public string AdminUrl => $"http://127.0.0.1:{AdminPort}";
    public string Log => string.Join('\n', _log);
    public bool HasExited => _process.HasExited;

    /// <summary>The exit code, once <see cref="HasExited"/>.</summary>
    public int ExitCode => _process.ExitCode;

    public static async Task<NodeProcess> StartAsync(string dataDir, string nodeName, IDictionary<string, string>? environment = null, TimeSpan? timeout = null)
    {
        var dll = Path.Combine(AppContext.BaseDirectory, "Broker.Edge.dll");
        var psi = new ProcessStartInfo("dotnet", [dll])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = AppContext.BaseDirectory,
        };
        psi.Environment["BROKER_NODE_NAME"] = nodeName;
        psi.Environment["BROKER_HOST"] = "127.0.0.1";
        psi.Environment["BROKER_MQTT_PORT"] = "0";
        psi.Environment["BROKER_ADMIN_PORT"] = "0";
        psi.Environment["BROKER_WS_PORT"] = "0";
        psi.Environment["BROKER_WSS_PORT"] = "0";
        psi.Environment["BROKER_AMQP_PORT"] = "0";
        psi.Environment["BROKER_REMOTE_PORT"] = "0";
        psi.Environment["BROKER_SEED_NODES"] = "";
        psi.Environment["BROKER_DATA_DIR"] = dataDir;
        psi.Environment["BROKER_DB_PROVIDER"] = "sqlite";
        psi.Environment["BROKER_DB_CONNECTION"] = "";
        foreach (var (k, v) in environment ?? new Dictionary<string, string>())
        {
            psi.Environment[k] = v;
        }
        var process = Process.Start(psi) ?? throw new InvalidOperationException("could not start the node");
        var node = new NodeProcess(process) { Name = nodeName };
        process.OutputDataReceived += (_, e) => node.OnLine(e.Data);
        process.ErrorDataReceived += (_, e) => node.OnLine(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var wait = timeout ?? TimeSpan.FromSeconds(90);
        var exited = process.WaitForExitAsync();
        var first = await Task.WhenAny(node._ready.Task, exited, Task.Delay(wait));
        if (first != node._ready.Task)
        {
            node.Dispose();
            throw new InvalidOperationException($"node {nodeName} did not become ready:\n{node.Log}");
        }
        return node;
    }

    private void OnLine(string? line)
    {
        if (line is null)
        {
            return;
        }
        _log.Enqueue(line);
        var mqtt = MqttLine().Match(line);
        if (mqtt.Success)
        {
            MqttPort = int.Parse(mqtt.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
        }
        var amqp = AmqpLine().Match(line);
        if (amqp.Success)
        {
            AmqpPort = int.Parse(amqp.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
        }
        var admin = AdminLine().Match(line);
        if (admin.Success)
        {
            AdminPort = int.Parse(admin.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
        }
        var remote = RemoteLine().Match(line);
        if (remote.Success)
        {
            RemotePort = int.Parse(remote.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
        }
        if (line.Contains(" ready (", StringComparison.Ordinal))
        {
            _ready.TrySetResult();
        }
    }

    [GeneratedRegex(@"MQTT listener on [^:]+:(\d+)")]
    private static partial Regex MqttLine();

    [GeneratedRegex(@"AMQP listener on [^:]+:(\d+)")]
    private static partial Regex AmqpLine();

    [GeneratedRegex(@"admin HTTP on http://[^:]+:(\d+)")]
    private static partial Regex AdminLine();

    [GeneratedRegex(@"ready \(remoting akka\.tcp://[^@]+@[^:]+:(\d+)")]
    private static partial Regex RemoteLine();

    /// <summary>SIGKILL: no shutdown code runs, as in a power cut of the process.</summary>
    public void Kill()
    {
        _process.Kill();
        _process.WaitForExit(30_000);
    }

    /// <summary>SIGTERM and wait for the clean shutdown; false if it did not exit in time.</summary>
    public bool Terminate(TimeSpan timeout)
    {
        _ = SendSignal(_process.Id, 15);
        return _process.WaitForExit(timeout);
    }

    /// <summary>SIGSTOP: the process stops running, sockets open, as in a long GC pause or a frozen VM.</summary>
    public void Pause() => _ = SendSignal(_process.Id, 19);

    /// <summary>SIGCONT after <see cref="Pause"/>.</summary>
    public void Resume() => _ = SendSignal(_process.Id, 18);

    [LibraryImport("libc", EntryPoint = "kill")]
    private static partial int SendSignal(int pid, int signal);

    public void Dispose()
    {
        if (!_process.HasExited)
        {
            _process.Kill();
            _process.WaitForExit(30_000);
        }
        _process.Dispose();
    }
}
