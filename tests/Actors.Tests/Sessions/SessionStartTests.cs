using Akka.Actor;
using Akka.Configuration;
using Akka.TestKit;
using Broker.Actors.Configuration;
using Broker.Actors.Messages;
using Broker.Actors.Routing;
using Broker.Actors.Sessions;

namespace Broker.Actors.Tests.Sessions;

/// <summary>A session actor on its own, with probes for its catalog, index, routes and connection.</summary>
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

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task A_copy_of_a_recent_message_is_delivered_once_whichever_copy_comes_first(bool copySentAgainFirst)
    {
        var catalog = CreateTestProbe();
        var routes = CreateTestProbe();
        routes.SetAutoPilot(new DelegateAutoPilot((sender, message) =>
        {
            if (message is AssertRoutes a)
            {
                sender.Tell(new RoutesAsserted(a.Token));
            }
            return AutoPilot.KeepRunning;
        }));
        var connection = CreateTestProbe();
        var publisher = CreateTestProbe();
        var services = new BrokerServices(Sys, BrokerSettings.From(Sys.Settings.Config), new SubscriptionTrie(), CreateTestProbe().Ref, routes.Ref, catalog.Ref);
        var session = Sys.ActorOf(SessionActor.Props(services), "copies-1");
        await catalog.ExpectMsgAsync<CatalogLookup>(Timeout);
        catalog.Reply(new CatalogFound("copies-1", false));
        session.Tell(new Connect("copies-1", "conn-1", new ConnectInfo(4, true, 0, 20, 65536, 0, false, false, null, 1_700_000_000_000), connection.Ref), connection.Ref);
        await connection.ExpectMsgAsync<ConnectAccepted>(Timeout);
        session.Tell(new SubscribeRequest("copies-1", "conn-1", 1, [new Subscription("t/#", 1, RetainHandling: 2)]), connection.Ref);
        await connection.FishForMessageAsync(m => m is not SendPublish and not ConnectAccepted, Timeout);

        // The first copy went through another node and arrives after the copy sent again through the region, or the
        // other way round; either way the client gets the message once and the publisher an answer to each copy.
        var message = new PublishedMessage("t/1", [1, 2, 3], 1, false, Id: 4242);
        session.Tell(new Deliver("copies-1", message, true, null, 7, Retry: copySentAgainFirst), publisher.Ref);
        session.Tell(new Deliver("copies-1", message, true, null, 7, Retry: !copySentAgainFirst), publisher.Ref);
        session.Tell(new Deliver("copies-1", message with { Id = 4243 }, true, null, 8), publisher.Ref);

        var sent = new List<long>();
        var deadline = DateTime.UtcNow + Timeout;
        while (sent.Count < 2 && DateTime.UtcNow < deadline)
        {
            if (await connection.ReceiveOneAsync(TimeSpan.FromSeconds(1)) is SendPublish p)
            {
                sent.Add(p.Message.Id);
            }
        }
        Assert.Equal([4242L, 4243L], sent);
        Assert.Equal([7L, 7L, 8L], new[]
        {
            (await publisher.ExpectMsgAsync<DeliverAck>(Timeout)).Correlation,
            (await publisher.ExpectMsgAsync<DeliverAck>(Timeout)).Correlation,
            (await publisher.ExpectMsgAsync<DeliverAck>(Timeout)).Correlation,
        }.Order());
        await connection.ExpectNoMsgAsync(TimeSpan.FromMilliseconds(300));
    }
}
