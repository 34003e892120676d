using Broker.Actors.Sessions;
using Broker.AdminHttp.Sessions;
using Broker.Tests.Shared;

namespace Broker.AdminHttp.Tests;

public sealed class SessionQueryServiceTests(AdminFixture fixture) : IClassFixture<AdminFixture>
{
    [Fact]
    public async Task A_catalog_that_cannot_be_read_is_named_unreachable_while_the_nodes_answer_the_page()
    {
        var id = Ids.New("catalog-down");
        await using var client = await TestClient.ConnectAsync(fixture.Node.MqttPort, id);
        var system = fixture.Node.Node.System;
        // A SQLite file in a folder that does not exist cannot be opened: every read of this catalog fails.
        var missing = Path.Combine(Path.GetTempPath(), "broker-missing-" + Guid.NewGuid().ToString("N"), "broker.db");
        var resting = new RestingSessions(new SessionCatalogStore("sqlite", $"Data Source={missing}"), new SessionInfoCodec(system));
        var service = new SessionQueryService(system, TimeSpan.FromSeconds(10), resting);

        // A clean session answers its CONNECT before it joins its node's session index: wait until the node lists it.
        SessionsPageResult page = null!;
        await Wait.UntilAsync(async () =>
        {
            page = await service.ListAsync(new ListSessions(null, id, SessionStateFilter.All, 10));
            return page.Sessions.Count > 0;
        }, TimeSpan.FromSeconds(10), "the node to list the session");

        Assert.True(page.AnyAnswered);
        Assert.Equal([SessionQueryService.CatalogSource], page.UnreachableNodes);
        Assert.Equal(id, Assert.Single(page.Sessions).ClientId);
    }
}
