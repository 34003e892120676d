using System.Net;
using System.Text.Json;
using Broker.Tests.Shared;

namespace Broker.Cluster.Tests;

[Collection(ClusterCollection.Name)]
public sealed class MembershipTests
{
    private static readonly HttpClient Http = new() { Timeout = TimeSpan.FromSeconds(20) };

    [Fact]
    public async Task A_node_that_is_no_longer_an_up_member_answers_503_while_the_others_answer_for_the_cluster()
    {
        var nodes = await TestNode.StartClusterAsync(2);
        try
        {
            var id = Ids.New("member");
            await using var client = await TestClient.ConnectAsync(nodes[0].MqttPort, id, clean: false, sessionExpiry: 600);
            var leaving = nodes[1];
            var cluster = Akka.Cluster.Cluster.Get(leaving.Node.System);

            await cluster.LeaveAsync();

            await Wait.UntilAsync(async () =>
            {
                using var r = await Http.GetAsync($"{leaving.AdminUrl}/api/v1/sessions");
                return r.StatusCode == HttpStatusCode.ServiceUnavailable;
            }, TimeSpan.FromSeconds(30), "the leaving node to answer 503");
            using (var r = await Http.GetAsync($"{leaving.AdminUrl}/api/v1/sessions/{id}"))
            {
                Assert.Equal(HttpStatusCode.ServiceUnavailable, r.StatusCode);
                using var doc = JsonDocument.Parse(await r.Content.ReadAsStringAsync());
                Assert.Equal("broker not available", doc.RootElement.GetProperty("error").GetString());
            }
            await Wait.UntilAsync(async () =>
            {
                using var doc = JsonDocument.Parse(await Http.GetStringAsync($"{nodes[0].AdminUrl}/api/v1/sessions?prefix={id}"));
                var missing = doc.RootElement.TryGetProperty("unreachable_nodes", out var u) ? u.GetArrayLength() : 0;
                return missing == 0 && doc.RootElement.GetProperty("sessions").GetArrayLength() == 1;
            }, TimeSpan.FromSeconds(30), "the remaining node to list the session with no node missing");
        }
        finally
        {
            foreach (var n in Enumerable.Reverse(nodes))
            {
                await n.DisposeAsync();
            }
            nodes[0].DeleteData();
        }
    }
}
