using System.Runtime.InteropServices;
using Broker.Edge.Hosting;

// Starts one broker node with cluster.hocon (overridden by BROKER_* environment variables) and runs
// until Ctrl-C or SIGTERM, then shuts down cleanly.
var stop = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
void OnSignal(PosixSignalContext ctx)
{
    ctx.Cancel = true;
    stop.TrySetResult();
}
using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnSignal);
using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal);

BrokerNode node;
try
{
    node = await BrokerNode.StartAsync();
}
catch (Exception ex)
{
    await Console.Error.WriteLineAsync($"broker failed to start: {ex.Message}");
    return 1;
}
await Task.WhenAny(stop.Task, node.WhenTerminated);
Console.WriteLine("shutting down");
await node.DisposeAsync();
Console.WriteLine("stopped");
return 0;
