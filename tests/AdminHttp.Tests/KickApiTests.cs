using System.Net;
using System.Text.Json;
using Broker.Tests.Shared;
using MQTTnet;
using MQTTnet.Formatter;

namespace Broker.AdminHttp.Tests;

/// <summary>DELETE /api/v1/sessions/{client_id}: real MQTT 5, MQTT 3.1.1 and AMQP clients disconnected by an operator.</summary>
public sealed class KickApiTests(AdminFixture fixture) : IClassFixture<AdminFixture>
{
    private Task<HttpResponseMessage> Kick(string clientId, string query = "") =>
        fixture.Http.DeleteAsync("/api/v1/sessions/" + Uri.EscapeDataString(clientId) + query);

    private async Task<long> KickedCount() =>
        JsonDocument.Parse(await fixture.Http.GetStringAsync("/api/v1/stats")).RootElement
            .GetProperty("by_protocol").GetProperty("mqtt").GetProperty("closed").GetProperty("kicked").GetInt64();

    private async Task<JsonElement?> Session(string clientId)
    {
        var response = await fixture.Http.GetAsync("/api/v1/sessions/" + Uri.EscapeDataString(clientId));
        return response.StatusCode == HttpStatusCode.NotFound ? null : JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.Clone();
    }

    [Fact]
    public async Task An_mqtt5_client_gets_administrative_action_and_its_persistent_session_stays()
    {
        var id = Ids.New("kick5") + "/dev";
        await using var client = await TestClient.ConnectAsync(fixture.Node.MqttPort, id, clean: false, sessionExpiry: 3600);
        await client.SubscribeAsync("kick/" + id);
        var reason = new TaskCompletionSource<MqttClientDisconnectReason>(TaskCreationOptions.RunContinuationsAsynchronously);
        client.Client.DisconnectedAsync += e =>
        {
            reason.TrySetResult(e.Reason);
            return Task.CompletedTask;
        };

        var kickedBefore = await KickedCount();
        Assert.Equal(HttpStatusCode.NoContent, (await Kick(id)).StatusCode);
        Assert.Equal(MqttClientDisconnectReason.AdministrativeAction, await reason.Task.WaitAsync(TimeSpan.FromSeconds(10)));
        await Wait.UntilAsync(async () => await KickedCount() > kickedBefore, TimeSpan.FromSeconds(10), "the close counted as kicked");
        await Wait.UntilAsync(async () => (await Session(id))?.GetProperty("state").GetString() == "disconnected", TimeSpan.FromSeconds(10),
            "the session to stay, disconnected");
        Assert.Equal(1, (await Session(id))!.Value.GetProperty("subscription_count").GetInt32());

        // Kicking a session nobody is connected to leaves it; discarding it ends it.
        Assert.Equal(HttpStatusCode.NoContent, (await Kick(id)).StatusCode);
        Assert.NotNull(await Session(id));
        Assert.Equal(HttpStatusCode.NoContent, (await Kick(id, "?discard=true")).StatusCode);
        await Wait.UntilAsync(async () => await Session(id) is null, TimeSpan.FromSeconds(10), "the discarded session to end");
        Assert.Equal(HttpStatusCode.NotFound, (await Kick(id)).StatusCode);
    }

    [Fact]
    public async Task Discard_ends_the_session_of_a_connected_mqtt311_client()
    {
        var id = Ids.New("kick4");
        await using var client = await TestClient.ConnectAsync(fixture.Node.MqttPort, id, MqttProtocolVersion.V311, clean: false);
        var closed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        client.Client.DisconnectedAsync += _ =>
        {
            closed.TrySetResult();
            return Task.CompletedTask;
        };
        Assert.Equal(HttpStatusCode.NoContent, (await Kick(id, "?discard=true")).StatusCode);
        await closed.Task.WaitAsync(TimeSpan.FromSeconds(10));
        await Wait.UntilAsync(async () => await Session(id) is null, TimeSpan.FromSeconds(10), "the session to end");
    }

    [Fact]
    public async Task An_amqp_connection_is_closed_with_320()
    {
        await using var connection = await new RabbitMQ.Client.ConnectionFactory
        {
            HostName = "127.0.0.1", Port = fixture.Node.AmqpPort, AutomaticRecoveryEnabled = false, ClientProvidedName = "kick-me",
        }.CreateConnectionAsync();
        var shutdown = new TaskCompletionSource<RabbitMQ.Client.Events.ShutdownEventArgs>(TaskCreationOptions.RunContinuationsAsynchronously);
        connection.ConnectionShutdownAsync += (_, e) =>
        {
            shutdown.TrySetResult(e);
            return Task.CompletedTask;
        };
        string? id = null;
        await Wait.UntilAsync(async () =>
        {
            var page = JsonDocument.Parse(await fixture.Http.GetStringAsync("/api/v1/sessions?prefix=amqp091:")).RootElement;
            id = page.GetProperty("sessions").EnumerateArray().Where(s => s.GetProperty("connection_name").GetString() == "kick-me")
                .Select(s => s.GetProperty("client_id").GetString()).FirstOrDefault();
            return id is not null;
        }, TimeSpan.FromSeconds(10), "the AMQP connection listed");

        Assert.Equal(HttpStatusCode.NoContent, (await Kick(id!)).StatusCode);
        var e = await shutdown.Task.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(320, e.ReplyCode);
        Assert.Equal("CONNECTION_FORCED - Closed via management plugin", e.ReplyText);
        await Wait.UntilAsync(async () => await Session(id!) is null, TimeSpan.FromSeconds(10), "the connection to leave the list");
    }

    [Fact]
    public async Task Unknown_clients_bad_parameters_and_other_methods_get_json_errors()
    {
        var unknown = await Kick("nobody-" + Guid.NewGuid().ToString("N"));
        Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);
        Assert.Equal("session not found", JsonDocument.Parse(await unknown.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetString());
        var bad = await Kick("x", "?discard=maybe");
        Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
        Assert.Equal("discard must be true or false", JsonDocument.Parse(await bad.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetString());
        var put = await fixture.Http.PutAsync("/api/v1/sessions/x", new StringContent("{}"));
        Assert.Equal(HttpStatusCode.MethodNotAllowed, put.StatusCode);
        Assert.Contains("DELETE", put.Content.Headers.Allow);
    }
}
