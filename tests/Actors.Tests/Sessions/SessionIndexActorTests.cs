using Akka.Actor;
using Akka.TestKit;
using Broker.Actors.Sessions;

namespace Broker.Actors.Tests.Sessions;

public class SessionIndexActorTests : Akka.TestKit.Xunit2.TestKit
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);

    private readonly IActorRef _index;

    public SessionIndexActorTests() : base("akka.loglevel = WARNING")
    {
        _index = Sys.ActorOf(SessionIndexActor.Props("node-a", TimeSpan.FromSeconds(1)));
    }

    /// <summary>A stand-in session actor that answers <see cref="GetSessionInfo"/> like the real one.</summary>
    private TestProbe Session(string clientId, bool connected, bool answers = true)
    {
        var probe = CreateTestProbe();
        if (answers)
        {
            probe.SetAutoPilot(new DelegateAutoPilot((sender, message) =>
            {
                if (message is GetSessionInfo)
                {
                    sender.Tell((SessionState.Empty(clientId) with { Exists = true, Connected = connected }).ToInfo("node-a"));
                }
                return AutoPilot.KeepRunning;
            }));
        }
        _index.Tell(new IndexUpdate(clientId, connected, probe.Ref));
        return probe;
    }

    private async Task<SessionsPage> List(string? after = null, string prefix = "", SessionStateFilter state = SessionStateFilter.All, int limit = 0)
    {
        _index.Tell(new ListSessions(after, prefix, state, limit), TestActor);
        var page = await ExpectMsgAsync<SessionsPage>(Timeout);
        Assert.Equal("node-a", page.Node);
        return page;
    }

    private static string[] Ids(SessionsPage page) => [.. page.Sessions.Select(s => s.ClientId)];

    [Fact]
    public async Task Sessions_are_listed_in_utf8_byte_order()
    {
        // UTF-16 ordinal order would put the emoji (a surrogate pair, 0xD83D...) before U+FFFD; UTF-8 order puts it after.
        foreach (var id in new[] { "b", "\U0001F600", "\uFFFD", "a", "B" })
        {
            Session(id, connected: true);
        }
        Assert.Equal(["B", "a", "b", "\uFFFD", "\U0001F600"], Ids(await List()));
    }

    [Fact]
    public async Task Pages_follow_each_other_with_after_and_limit()
    {
        foreach (var id in new[] { "c1", "c2", "c3", "c4", "c5" })
        {
            Session(id, connected: true);
        }
        var first = await List(limit: 2);
        Assert.Equal(["c1", "c2"], Ids(first));
        Assert.True(first.HasMore);
        var second = await List(after: "c2", limit: 2);
        Assert.Equal(["c3", "c4"], Ids(second));
        Assert.True(second.HasMore);
        var last = await List(after: "c4", limit: 2);
        Assert.Equal(["c5"], Ids(last));
        Assert.False(last.HasMore);
        Assert.Empty(Ids(await List(after: "c5", limit: 2)));
        Assert.Empty(Ids(await List(after: "zzz")));
    }

    [Fact]
    public async Task Limit_equal_to_the_rows_left_reports_no_more()
    {
        Session("x1", true);
        Session("x2", true);
        var page = await List(limit: 2);
        Assert.Equal(["x1", "x2"], Ids(page));
        Assert.False(page.HasMore);
    }

    [Fact]
    public async Task Prefix_selects_ids_that_start_with_it_even_with_an_after_before_it()
    {
        foreach (var id in new[] { "app-1", "app-2", "apple", "b-1", "ap" })
        {
            Session(id, connected: true);
        }
        Assert.Equal(["app-1", "app-2", "apple"], Ids(await List(prefix: "app")));
        Assert.Equal(["app-1", "app-2", "apple"], Ids(await List(after: "a", prefix: "app")));
        Assert.Equal(["app-2", "apple"], Ids(await List(after: "app-1", prefix: "app")));
        Assert.Empty(Ids(await List(prefix: "zz")));
    }

    [Fact]
    public async Task State_filter_counts_toward_the_limit_only_matching_rows()
    {
        Session("s1", connected: true);
        Session("s2", connected: false);
        Session("s3", connected: true);
        Session("s4", connected: false);
        Assert.Equal(["s1", "s3"], Ids(await List(state: SessionStateFilter.Connected)));
        var page = await List(state: SessionStateFilter.Disconnected, limit: 1);
        Assert.Equal(["s2"], Ids(page));
        Assert.True(page.HasMore);
        var next = await List(after: "s2", state: SessionStateFilter.Disconnected, limit: 1);
        Assert.Equal(["s4"], Ids(next));
        Assert.False(next.HasMore);
    }

    [Fact]
    public async Task Index_update_changes_the_connected_state()
    {
        var probe = Session("flip", connected: true);
        _index.Tell(new IndexUpdate("flip", false, probe.Ref));
        Assert.Empty(Ids(await List(state: SessionStateFilter.Connected)));
        Assert.Equal(["flip"], Ids(await List(state: SessionStateFilter.Disconnected)));
    }

    [Fact]
    public async Task Session_that_does_not_answer_is_left_out_of_the_page()
    {
        Session("fast-1", true);
        Session("silent", true, answers: false);
        Session("fast-2", true);
        Assert.Equal(["fast-1", "fast-2"], Ids(await List()));
    }

    [Fact]
    public async Task Find_answers_the_session_or_not_found()
    {
        Session("known", connected: false);
        _index.Tell(new FindSession("known"), TestActor);
        var info = await ExpectMsgAsync<SessionInfo>(Timeout);
        Assert.Equal("known", info.ClientId);
        Assert.False(info.Connected);
        _index.Tell(new FindSession("unknown"), TestActor);
        Assert.Equal(new SessionNotFound("unknown"), await ExpectMsgAsync<SessionNotFound>(Timeout));
    }

    [Fact]
    public async Task Remove_from_an_older_incarnation_keeps_the_newer_one()
    {
        var old = Session("re", connected: false);
        var current = Session("re", connected: true);
        _index.Tell(new IndexRemove("re", old.Ref));
        Assert.Equal(["re"], Ids(await List()));
        _index.Tell(new IndexRemove("re", current.Ref));
        Assert.Empty(Ids(await List()));
        _index.Tell(new FindSession("re"), TestActor);
        await ExpectMsgAsync<SessionNotFound>(Timeout);
    }
}
