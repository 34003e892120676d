using Akka.Actor;
using Akka.Configuration;
using Broker.Actors.Amqp;
using Broker.Actors.Amqp.Topology;
using Broker.Actors.Serialization;

namespace Broker.Actors.Tests.Amqp.Topology;

/// <summary>
/// Topology messages and events through the broker serializer. <see cref="Samples"/> also feed the round-trip
/// theory of <c>SerializerTests</c>; the types that carry an actor reference are checked here.
/// </summary>
public class TopologySerializerTests() : Akka.TestKit.Xunit2.TestKit(SystemConfig())
{
    private static Config SystemConfig() =>
        ConfigurationFactory.ParseString("akka.actor.provider = local")
            .WithFallback(ConfigurationFactory.ParseString(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "cluster.hocon"))));

    private static readonly ExchangeDefinition Exchange = new("ex.\u00fc", ExchangeKind.Headers, Durable: true, AutoDelete: true, Internal: true);

    private static readonly QueueDefinition RichQueue = new("q-\u00e9", Durable: true, AutoDelete: true, "conn-7",
        new QueueArguments(MessageTtlMs: 60_000, ExpiresMs: long.MaxValue, MaxLength: 0, DeadLetterExchange: "", DeadLetterRoutingKey: "dead.\u00fc"));

    private static readonly QueueDefinition PlainQueue = new("", Durable: false, AutoDelete: false, null, QueueArguments.None);

    private static readonly BindingDefinition QueueBinding = new("amq.topic", "q-\u00e9", false, "a.*.#", []);

    private static readonly BindingDefinition ExchangeBinding = new("src", "dst", true, "", [0, 0, 0, 6, 1, (byte)'a', (byte)'I', 0, 0, 0]);

    /// <summary>Types named here carry an actor reference and are tested below.</summary>
    public static readonly string[] WithActorReferences = [nameof(TopologySyncRequest), nameof(QueueOwnerRecorded)];

    public static IEnumerable<object> Samples()
    {
        yield return new DeclareExchange(Exchange, Passive: true);
        yield return new DeclareExchange(new ExchangeDefinition("", ExchangeKind.Direct, false, false, false), Passive: false);
        yield return new DeleteExchange("x", IfUnused: true);
        yield return new DeclareQueue(RichQueue, Passive: false, Owner: null);
        yield return new DeclareQueue(PlainQueue, Passive: true, Owner: null);
        yield return new QueueDeclared(RichQueue, long.MaxValue);
        yield return new QueueDeclared(PlainQueue with { Arguments = new QueueArguments(MaxLength: 5) }, 1);
        yield return new DeleteQueue("q", IfUnused: true, IfEmpty: false, "conn-1");
        yield return new DeleteQueue("q", IfUnused: false, IfEmpty: true);
        yield return new QueueDeleted("q", uint.MaxValue, 42);
        yield return new Bind(QueueBinding, "conn-2");
        yield return new Bind(ExchangeBinding);
        yield return new Unbind(ExchangeBinding);
        yield return new ConnectionGone("conn-3");
        yield return new TopologyOk(0);
        yield return new TopologyApplied(long.MaxValue);
        yield return new TopologyRefused(406, "PRECONDITION_FAILED - inequivalent arg 'type' for exchange 'x' in vhost '/': received 'fanout' but current is 'direct'");
        yield return new TopologySnapshot(9, [Exchange], [RichQueue, PlainQueue], [QueueBinding, ExchangeBinding]);
        yield return new TopologySnapshot(0, [], [], []);
        yield return new TopologyChanged(1, new ExchangeAdded(Exchange));
        yield return new TopologyChanged(2, new ExchangeRemoved("x"));
        yield return new TopologyChanged(3, new QueueAdded(RichQueue));
        yield return new TopologyChanged(4, new QueueRemoved("q"));
        yield return new TopologyChanged(5, new BindingAdded(ExchangeBinding));
        yield return new TopologyChanged(long.MaxValue, new BindingRemoved(QueueBinding));
        yield return new MembersSeen([long.MinValue, -1, 7, int.MaxValue]);
        yield return new MembersSeen([]);
        yield return new TopologyOwnerSnapshot(new TopologySnapshot(3, [Exchange], [PlainQueue], [ExchangeBinding]), [], [1, 2]);
        yield return new TopologyOwnerSnapshot(new TopologySnapshot(0, [], [], []), [], null);
    }

    private BrokerSerializer SerializerFor(object message) => Assert.IsType<BrokerSerializer>(Sys.Serialization.FindSerializerFor(message));

    private T RoundTrip<T>(T original)
        where T : notnull
    {
        var serializer = SerializerFor(original);
        var manifest = serializer.Manifest(original);
        Assert.StartsWith("T:", manifest, StringComparison.Ordinal);
        return Assert.IsType<T>(serializer.FromBinary(serializer.ToBinary(original), manifest));
    }

    [Fact]
    public void Every_sample_has_a_topology_manifest()
    {
        foreach (var sample in Samples())
        {
            Assert.StartsWith("T:", SerializerFor(sample).Manifest(sample), StringComparison.Ordinal);
        }
    }

    [Fact]
    public void A_binding_keeps_its_argument_bytes_and_equality()
    {
        var copy = RoundTrip(new Bind(ExchangeBinding));
        Assert.Equal(ExchangeBinding, copy.Binding);
        Assert.Equal(ExchangeBinding.Arguments, copy.Binding.Arguments);
    }

    [Fact]
    public void Sync_request_round_trips_the_replica_reference()
    {
        var replica = CreateTestProbe("replica");
        var copy = RoundTrip(new TopologySyncRequest(replica.Ref, 17));
        Assert.Equal(17, copy.Version);
        copy.Replica.Tell("ping");
        replica.ExpectMsg("ping", TimeSpan.FromSeconds(3));
    }

    [Fact]
    public void Declare_queue_round_trips_its_owner_reference()
    {
        var connection = CreateTestProbe("connection");
        var copy = RoundTrip(new DeclareQueue(RichQueue, false, connection.Ref));
        Assert.Equal(RichQueue, copy.Definition);
        Assert.Equal(connection.Ref, copy.Owner);
    }

    [Fact]
    public void Owner_records_and_snapshots_round_trip_their_connection_references()
    {
        var connection = CreateTestProbe("owner");
        var recorded = RoundTrip(new QueueOwnerRecorded("excl", connection.Ref));
        Assert.Equal(new QueueOwnerRecorded("excl", connection.Ref), recorded);

        var snapshot = RoundTrip(new TopologyOwnerSnapshot(new TopologySnapshot(1, [], [RichQueue], []), [new QueueOwnerRecorded(RichQueue.Name, connection.Ref)], [5]));
        Assert.Equal([new QueueOwnerRecorded(RichQueue.Name, connection.Ref)], snapshot.Owners);
        Assert.Equal([RichQueue], snapshot.Topology.Queues);
        Assert.Equal([5L], snapshot.MembersSeen!);
    }
}
