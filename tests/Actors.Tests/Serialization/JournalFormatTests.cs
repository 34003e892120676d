using System.Runtime.Serialization;
using System.Text.RegularExpressions;
using Akka.Actor;
using Akka.Configuration;
using Broker.Actors.Amqp;
using Broker.Actors.Amqp.Queues;
using Broker.Actors.Amqp.Topology;
using Broker.Actors.Messages;
using Broker.Actors.Retained;
using Broker.Actors.Serialization;
using Broker.Actors.Sessions;

namespace Broker.Actors.Tests.Serialization;

public sealed partial class JournalFormatTests : IAsyncLifetime
{
    private readonly List<ActorSystem> _systems = [];

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (var system in _systems)
        {
            await system.Terminate();
        }
    }

    /// <summary>The serializer as a node with cluster.hocon and <paramref name="overrides"/> on top builds it.</summary>
    private BrokerSerializer Serializer(string overrides = "")
    {
        var clusterHocon = ConfigurationFactory.ParseString(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "cluster.hocon")));
        var system = ActorSystem.Create("format", ConfigurationFactory.ParseString("akka.actor.provider = local\n" + overrides).WithFallback(clusterHocon));
        _systems.Add(system);
        return Assert.IsType<BrokerSerializer>(system.Serialization.FindSerializerForType(typeof(SubscriptionAdded)));
    }

    [Fact]
    public void Persisted_types_name_the_format_in_their_manifest_and_messages_between_nodes_do_not()
    {
        var serializer = Serializer();
        foreach (var sample in SerializerTests.Samples())
        {
            var manifest = serializer.Manifest(sample);
            if (sample is IPersisted)
            {
                Assert.Matches(@"^[^.]+\.1$", manifest);
            }
            else
            {
                Assert.DoesNotContain(".", manifest, StringComparison.Ordinal);
            }
        }
    }

    [Fact]
    public void Format_0_writes_what_builds_before_versioning_wrote_and_both_formats_read()
    {
        var current = Serializer();
        var legacy = Serializer("broker.persistence.format-version = 0");
        foreach (var sample in SerializerTests.Samples().OfType<IPersisted>())
        {
            var bytes = current.ToBinary(sample);
            var manifest = current.Manifest(sample);
            var legacyManifest = legacy.Manifest(sample);

            Assert.Equal(manifest, legacyManifest + ".1");
            Assert.Equal(bytes, legacy.ToBinary(sample));
            Structural.Equal(sample, current.FromBinary(bytes, legacyManifest));
            Structural.Equal(sample, legacy.FromBinary(bytes, manifest));
        }
    }

    [Fact]
    public void A_newer_format_is_refused_naming_the_manifest_and_the_format()
    {
        var serializer = Serializer();
        var bytes = serializer.ToBinary(new SubscriptionRemoved("a/b"));

        var refused = Assert.Throws<SerializationException>(() => serializer.FromBinary(bytes, "E5.2"));

        Assert.Contains("'E5.2'", refused.Message, StringComparison.Ordinal);
        Assert.Contains("format 2", refused.Message, StringComparison.Ordinal);
        Assert.Contains("formats 0 to 1", refused.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("E5.")]
    [InlineData("E5.x")]
    [InlineData("E5.-1")]
    [InlineData("E5.01")]
    [InlineData("E5.1.1")]
    [InlineData("E5.99999999999")]
    public void A_malformed_format_is_refused(string manifest)
    {
        var serializer = Serializer();
        var bytes = serializer.ToBinary(new SubscriptionRemoved("a/b"));

        var refused = Assert.Throws<SerializationException>(() => serializer.FromBinary(bytes, manifest));

        Assert.Contains($"'{manifest}'", refused.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_node_cannot_be_configured_to_write_a_format_it_does_not_know()
    {
        var thrown = Record.Exception(() => Serializer("broker.persistence.format-version = 2"));

        var chain = new List<Exception>();
        for (var e = thrown; e is not null; e = e.InnerException)
        {
            chain.Add(e);
        }
        Assert.Contains(chain, e => e is ConfigurationException && e.Message.Contains("format-version is 2", StringComparison.Ordinal));
    }

    /// <summary>
    /// What each place that writes to the journal or the snapshot store writes. A new Persist…/SaveSnapshot call fails
    /// this test until what it writes is added here, and so made <see cref="IPersisted"/> (which versions its manifest)
    /// and added to the journal fixture.
    /// </summary>
    private static readonly (string File, int Calls, Type[] Writes)[] Writers =
    [
        ("src/Actors/Sessions/SessionJournal.cs", 2, [typeof(ISessionEvent), typeof(SessionHandedOff), typeof(SessionState)]),
        ("src/Actors/Retained/RetainedStoreActor.cs", 3, [typeof(RetainedSet), typeof(RetainedRemoved), typeof(RetainedSnapshot)]),
        ("src/Actors/Amqp/Queues/QueueActor.cs", 2, [typeof(IQueueEvent), typeof(QueueSnapshot)]),
        ("src/Actors/Amqp/Topology/TopologyOwner.cs", 3, [typeof(TopologyChanged), typeof(QueueOwnerRecorded), typeof(MembersSeen), typeof(TopologyOwnerSnapshot)]),
    ];

    // Sessions write their journal through the catalog (SessionJournalTables): new JournalAppend(...) and new JournalSnapshotSave(...).
    [GeneratedRegex(@"\b(?:Persist|PersistAsync|PersistAll|PersistAllAsync|SaveSnapshot)\(|\bnew (?:JournalAppend|JournalSnapshotSave)\(")]
    private static partial Regex WriteCall();

    [Fact]
    public void Everything_an_entity_persists_is_IPersisted_and_nothing_else_is()
    {
        var root = Repository.Root();
        var found = Directory.EnumerateFiles(Path.Combine(root, "src"), "*.cs", SearchOption.AllDirectories)
            .Select(f => (File: Path.GetRelativePath(root, f).Replace('\\', '/'), Calls: WriteCall().Count(File.ReadAllText(f))))
            .Where(f => f.Calls > 0)
            .OrderBy(f => f.File, StringComparer.Ordinal);
        Assert.Equal(Writers.Select(w => (w.File, w.Calls)).OrderBy(w => w.File, StringComparer.Ordinal), found);

        Assert.All(Writers.SelectMany(w => w.Writes), t => Assert.True(typeof(IPersisted).IsAssignableFrom(t), $"{t.Name} is persisted but not IPersisted"));
        var written = Writers.SelectMany(w => w.Writes).ToArray();
        var persisted = typeof(IPersisted).Assembly.GetTypes().Where(t => typeof(IPersisted).IsAssignableFrom(t) && t is { IsClass: true, IsAbstract: false });
        Assert.All(persisted, t => Assert.True(written.Any(w => w.IsAssignableFrom(t)), $"{t.Name} is IPersisted but nothing persists it"));
    }
}
