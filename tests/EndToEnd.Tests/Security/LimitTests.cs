using System.Net.Sockets;
using Broker.Actors.Messages;
using Broker.Tests.Shared;
using MQTTnet;
using MQTTnet.Adapter;
using MQTTnet.Formatter;

namespace Broker.EndToEnd.Tests.Security;

/// <summary>Connection limits crossed by real clients: the one client beyond is refused in its protocol, the others keep going.</summary>
public sealed class LimitTests
{
    private static async Task<MqttClientConnectResultCode> ConnectCode(int port, MqttProtocolVersion version, string? user = null, string? password = null)
    {
        var client = new MqttClientFactory().CreateMqttClient();
        try
        {
            var options = new MqttClientOptionsBuilder().WithTcpServer("127.0.0.1", port).WithClientId(Ids.New("lim")).WithProtocolVersion(version)
                .WithTimeout(TimeSpan.FromSeconds(10));
            if (user is not null)
            {
                options.WithCredentials(user, password);
            }
            var result = await client.ConnectAsync(options.Build());
            await client.DisconnectAsync();
            return result.ResultCode;
        }
        catch (MqttConnectingFailedException ex)
        {
            var match = System.Text.RegularExpressions.Regex.Match(ex.Message, "'([A-Za-z]+)'");
            return Enum.Parse<MqttClientConnectResultCode>(match.Groups[1].Value);
        }
        finally
        {
            client.Dispose();
        }
    }

    [Fact]
    public async Task A_full_node_refuses_the_next_client_with_quota_exceeded_and_takes_one_again_when_one_leaves()
    {
        await using var node = await TestNode.StartAsync("broker.limits.max-connections = 3");
        try
        {
            var refused = BrokerCounters.ConnectionsRefused.Value;
            await using var a = await TestClient.ConnectAsync(node.MqttPort, Ids.New("a"));
            await using var b = await TestClient.ConnectAsync(node.MqttPort, Ids.New("b"));
            using var amqp = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            await amqp.ConnectAsync(System.Net.IPAddress.Loopback, node.AmqpPort);   // the third, on another listener
            await Wait.UntilAsync(() => node.Node.Connections == 3, TimeSpan.FromSeconds(10), "three connections admitted");

            Assert.Equal(MqttClientConnectResultCode.QuotaExceeded, await ConnectCode(node.MqttPort, MqttProtocolVersion.V500));
            Assert.Equal(MqttClientConnectResultCode.ServerUnavailable, await ConnectCode(node.MqttPort, MqttProtocolVersion.V311));
            using (var late = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp))
            {
                await late.ConnectAsync(System.Net.IPAddress.Loopback, node.AmqpPort);
                await late.SendAsync("AMQP\0\0\x09\x01"u8.ToArray(), SocketFlags.None);
                Assert.Empty(await MqttWire.ReadUntilClosedAsync(late, TimeSpan.FromSeconds(10)));   // closed, nothing said
            }
            Assert.True(BrokerCounters.ConnectionsRefused.Value - refused >= 3);

            // The admitted clients are untouched; one leaving makes room.
            await a.PublishAsync("lim/x", "still here");
            await b.Client.DisconnectAsync();
            await Wait.UntilAsync(async () => await ConnectCode(node.MqttPort, MqttProtocolVersion.V500) == MqttClientConnectResultCode.Success,
                TimeSpan.FromSeconds(10), "a client to get the freed place");
        }
        finally
        {
            node.DeleteData();
        }
    }

    [Fact]
    public async Task Refused_connections_beyond_those_being_answered_are_closed_without_an_answer()
    {
        await using var node = await TestNode.StartAsync("""
            broker.limits.max-connections = 1
            broker.limits.refusals-answered = 4
            """);
        var silent = new List<Socket>();
        try
        {
            await using var holder = await TestClient.ConnectAsync(node.MqttPort, Ids.New("holder"));
            await Wait.UntilAsync(() => node.Node.Connections == 1, TimeSpan.FromSeconds(10), "the one connection admitted");
            // Four refused connections that say nothing hold every place for an answer (each waits for its first bytes)...
            for (var i = 0; i < 4; i++)
            {
                silent.Add(await MqttWire.OpenAsync(node.MqttPort));
            }
            // ...so the next refused one is closed unanswered.
            using (var beyond = await MqttWire.OpenAsync(node.MqttPort))
            {
                await beyond.SendAsync(MqttWire.Connect(Ids.New("beyond"), 5), SocketFlags.None);
                Assert.Empty(await MqttWire.ReadUntilClosedAsync(beyond, TimeSpan.FromSeconds(10)));
            }
            // One being answered still gets CONNACK 0x97 Quota exceeded.
            await silent[0].SendAsync(MqttWire.Connect(Ids.New("held"), 5), SocketFlags.None);
            var (header, body) = await MqttWire.ReadPacketAsync(silent[0]);
            Assert.Equal((0x20, 0x97), (header, body[1]));
            foreach (var socket in silent)
            {
                socket.Dispose();
            }
            // Their places free again: a refused client is answered.
            await Wait.UntilAsync(async () => await ConnectCode(node.MqttPort, MqttProtocolVersion.V500) == MqttClientConnectResultCode.QuotaExceeded,
                TimeSpan.FromSeconds(10), "a refused client answered again");
            await holder.PublishAsync("lim/held", "still here");
        }
        finally
        {
            foreach (var socket in silent)
            {
                socket.Dispose();
            }
            node.DeleteData();
        }
    }

    [Fact]
    public async Task An_address_that_fails_to_log_in_too_often_is_refused_for_a_while_even_with_the_right_password()
    {
        var folder = Path.Combine(Path.GetTempPath(), "broker-lim-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(folder);
        var passwords = Path.Combine(folder, "passwords");
        Edge.Security.PasswordFile.Update(passwords, "dana", "right");
        await using var node = await TestNode.StartAsync($$"""
            broker.mqtt.password-file = "{{passwords}}"
            broker.limits.failed-logins-per-ip = 3
            broker.limits.failed-login-refill = 60s
            """);
        try
        {
            Assert.Equal(MqttClientConnectResultCode.Success, await ConnectCode(node.MqttPort, MqttProtocolVersion.V500, "dana", "right"));
            for (var i = 0; i < 3; i++)
            {
                Assert.Equal(MqttClientConnectResultCode.BadUserNameOrPassword, await ConnectCode(node.MqttPort, MqttProtocolVersion.V500, "dana", "guess" + i));
            }
            Assert.Equal(MqttClientConnectResultCode.ConnectionRateExceeded, await ConnectCode(node.MqttPort, MqttProtocolVersion.V500, "dana", "right"));
            Assert.Equal(MqttClientConnectResultCode.ServerUnavailable, await ConnectCode(node.MqttPort, MqttProtocolVersion.V311, "dana", "right"));
        }
        finally
        {
            node.DeleteData();
            Directory.Delete(folder, recursive: true);
        }
    }

    [Fact]
    public async Task Connects_faster_than_the_rate_per_address_are_refused_with_connection_rate_exceeded()
    {
        await using var node = await TestNode.StartAsync("""
            broker.limits.connect-rate-per-ip = 0.1
            broker.limits.connect-burst-per-ip = 2
            """);
        try
        {
            Assert.Equal(MqttClientConnectResultCode.Success, await ConnectCode(node.MqttPort, MqttProtocolVersion.V500));
            Assert.Equal(MqttClientConnectResultCode.Success, await ConnectCode(node.MqttPort, MqttProtocolVersion.V500));
            Assert.Equal(MqttClientConnectResultCode.ConnectionRateExceeded, await ConnectCode(node.MqttPort, MqttProtocolVersion.V500));
        }
        finally
        {
            node.DeleteData();
        }
    }
}
