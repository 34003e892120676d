using System.Text;
using System.Text.Json;
using Akka;
using Akka.Actor;
using Akka.Streams;
using Akka.Streams.Dsl;
using Broker.AdminHttp.Json;
using Microsoft.AspNetCore.Http;

namespace Broker.AdminHttp.Stats;

/// <summary>
/// <c>GET /api/v1/stats/stream</c>: the cluster-wide stats as Server-Sent Events, one <c>data:</c> line about every
/// second. One Akka.Streams graph per node asks the members once a second and broadcasts each answer (a BroadcastHub)
/// to every connected viewer, so viewers add connections, not queries; the graph runs only while someone watches.
/// At most <c>broker.admin.max-stat-streams</c> viewers at once.
/// </summary>
public sealed class StatsStream(ActorSystem system, StatsService stats, int maxStreams) : IDisposable
{
    private readonly ActorMaterializer _materializer = system.Materializer(namePrefix: "admin-stats");
    private readonly object _gate = new();
    private Source<byte[], NotUsed>? _hub;
    private UniqueKillSwitch? _ticks;
    private int _viewers;

    /// <summary>Serves one viewer until it goes away; 503 (JSON error) when <paramref name="maxStreams"/> already watch.</summary>
    public async Task ServeAsync(HttpContext ctx)
    {
        Source<byte[], NotUsed> hub;
        lock (_gate)
        {
            if (_viewers >= maxStreams)
            {
                hub = null!;
            }
            else
            {
                _viewers++;
                hub = _hub ??= Start();
            }
        }
        if (hub is null)
        {
            ctx.Response.StatusCode = 503;
            await ctx.Response.WriteAsJsonAsync(new ErrorBody("too many stats streams"), AdminJson.Api.ErrorBody).ConfigureAwait(false);
            return;
        }
        try
        {
            ctx.Response.ContentType = "text/event-stream";
            ctx.Response.Headers.CacheControl = "no-cache";
            await ctx.Response.Body.FlushAsync(ctx.RequestAborted).ConfigureAwait(false);
            var (kill, done) = hub
                .ViaMaterialized(KillSwitches.Single<byte[]>(), Keep.Right)
                .SelectAsync(1, async frame =>
                {
                    await ctx.Response.Body.WriteAsync(frame, ctx.RequestAborted).ConfigureAwait(false);
                    await ctx.Response.Body.FlushAsync(ctx.RequestAborted).ConfigureAwait(false);
                    return NotUsed.Instance;
                })
                .ToMaterialized(Sink.Ignore<NotUsed>(), Keep.Both)
                .Run(_materializer);
            using (ctx.RequestAborted.Register(kill.Shutdown))
            {
                try
                {
                    await done.ConfigureAwait(false);
                }
                catch (Exception) when (ctx.RequestAborted.IsCancellationRequested)
                {
                    // The viewer went away mid-write.
                }
            }
        }
        finally
        {
            lock (_gate)
            {
                if (--_viewers == 0)
                {
                    // Nobody watches: stop asking the members.
                    _ticks?.Shutdown();
                    _ticks = null;
                    _hub = null;
                }
            }
        }
    }

    private Source<byte[], NotUsed> Start()
    {
        var (ticks, hub) = Source.Tick(TimeSpan.Zero, TimeSpan.FromSeconds(1), NotUsed.Instance)
            .ViaMaterialized(KillSwitches.Single<NotUsed>(), Keep.Right)
            .SelectAsync(1, async _ => await stats.GatherAsync().ConfigureAwait(false))
            .Where(s => s is { Nodes.Count: > 0 })
            .Select(s => Frame(StatsService.Body(s!, withNodes: true)))
            // A viewer slower than a frame a second misses frames rather than holding the others back.
            .ToMaterialized(BroadcastHub.Sink<byte[]>(bufferSize: 2), Keep.Both)
            .Run(_materializer);
        _ticks = ticks;
        return hub.Buffer(2, OverflowStrategy.DropHead);
    }

    /// <summary>One Server-Sent Event: <c>data: JSON</c> and a blank line.</summary>
    public static byte[] Frame(StatsBody body) =>
        Encoding.UTF8.GetBytes("data: " + JsonSerializer.Serialize(body, AdminJson.Api.StatsBody) + "\n\n");

    public void Dispose()
    {
        _ticks?.Shutdown();
        _materializer.Dispose();
    }
}
