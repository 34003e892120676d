using Akka.Actor;
using Akka.Configuration;
using Akka.TestKit;
using Broker.Actors.Configuration;
using Broker.Actors.Routing;
using Broker.Actors.Sessions;

namespace Broker.Actors.Tests.Sessions;

/// <summary>A session actor while its catalog lookup is still running (a slow store): what the client and the admin API see.</summary>
public class SessionStartTests() : Akka.TestKit.Xunit2.TestKit(Config)
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);

    private static Config Config => ConfigurationFactory.ParseString("akka.loglevel = WARNING\nakka.actor.provider = local")
        .WithFallback(ConfigurationFactory.ParseString(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "cluster.hocon"))));

    [Fact]
    public async Task A_clean_start_answered_before_the_catalog_is_indexed_before_the_client_hears_of_it()
    {
        var catalog = CreateTestProbe();
        var index = CreateTestProbe();
        var connection = CreateTestProbe();
        var services = new BrokerServices(Sys, BrokerSettings.From(Sys.Settings.Config), new SubscriptionTrie(), index.Ref, CreateTestProbe().Ref, catalog.Ref);
        var session = Sys.ActorOf(SessionActor.Props(services), "early-1");
        await catalog.ExpectMsgAsync<CatalogLookup>(Timeout);

        var info = new ConnectInfo(4, true, 0, 20, 65536, 0, false, false, null, 1_700_000_000_000);
        session.Tell(new Connect("early-1", "conn-1", info, connection.Ref, "alice"), connection.Ref);

        // The catalog has not answered, yet the client is accepted; the index heard of the session first.
        var update = await index.ExpectMsgAsync<IndexUpdate>(Timeout);
        Assert.Equal(("early-1", true, (byte)4, "alice"), (update.ClientId, update.Connected, update.ProtocolLevel, update.Username));
        Assert.Equal(session, update.Session);
        Assert.False((await connection.ExpectMsgAsync<ConnectAccepted>(Timeout)).SessionPresent);

        // Details asked meanwhile (what the index does for the admin API) are answered once the session has started.
        var asker = CreateTestProbe();
        session.Tell(GetSessionInfo.Instance, asker.Ref);
        await asker.ExpectNoMsgAsync(TimeSpan.FromMilliseconds(200));
        catalog.Reply(new CatalogFound("early-1", false));
        var details = await asker.ExpectMsgAsync<SessionInfo>(Timeout);
        Assert.Equal(("early-1", true, (byte)4), (details.ClientId, details.Connected, details.ProtocolLevel));
        var after = await index.ExpectMsgAsync<IndexUpdate>(Timeout);
        Assert.True(after.Connected);
    }
}
