using System.Net.WebSockets;
using Broker.Tests.Shared;
using MQTTnet;

namespace Broker.EndToEnd.Tests.Security;

/// <summary>MQTT over WebSocket (ws://) and secure WebSocket (wss://) on the TLS fixture's node, with MQTTnet and paho.</summary>
public sealed class WebSocketTests(TlsNodeFixture fixture) : IClassFixture<TlsNodeFixture>
{
    private Edge.Hosting.BrokerNode Node => fixture.Node.Node;

    [Fact]
    public async Task Mqttnet_over_ws_and_wss_reaches_tcp_clients_and_back()
    {
        var topic = "ws/" + Ids.New("t");
        await using var ws = await Connect($"ws://127.0.0.1:{Node.WsPort}/mqtt", b => { });
        await using var wss = await Connect($"wss://localhost:{Node.WssPort}/mqtt", b => b
            .WithTlsOptions(t => t.UseTls().WithTargetHost("localhost").WithCertificateValidationHandler(e => fixture.Certificates.ValidateServer(e.Certificate))));
        await ws.SubscribeAsync(topic);
        await wss.SubscribeAsync(topic);
        await using var tcp = await TestClient.ConnectAsync(fixture.Node.MqttPort, Ids.New("tcp"), configure: b => b.WithCredentials("alice", "alice-pw"));
        await tcp.SubscribeAsync(topic);

        await tcp.PublishAsync(topic, "from-tcp");
        Assert.Equal("from-tcp", ws.NextText());
        Assert.Equal("from-tcp", wss.NextText());
        Assert.Equal("from-tcp", tcp.NextText());
        var big = new string('w', 200_000);
        await ws.PublishAsync(topic, big);
        Assert.Equal(big, tcp.NextText());
        Assert.Equal(big, wss.NextText());
        Assert.Equal(big, ws.NextText());
    }

    private static async Task<TestClient> Connect(string uri, Action<MqttClientOptionsBuilder> tls)
    {
        var client = new TestClient(Ids.New("ws"));
        var options = new MqttClientOptionsBuilder().WithWebSocketServer(o => o.WithUri(uri)).WithClientId(client.ClientId)
            .WithCredentials("alice", "alice-pw").WithTimeout(TimeSpan.FromSeconds(10));
        tls(options);
        Assert.Equal(MqttClientConnectResultCode.Success, (await client.Client.ConnectAsync(options.Build())).ResultCode);
        return client;
    }

    [Fact]
    public async Task Paho_websocket_transport_publishes_and_subscribes()
    {
        var topic = "ws/" + Ids.New("paho");
        await using var tcp = await TestClient.ConnectAsync(fixture.Node.MqttPort, Ids.New("tcp"), configure: b => b.WithCredentials("alice", "alice-pw"));
        await tcp.SubscribeAsync(topic);
        var script = $$"""
            import threading, paho.mqtt.client as mqtt
            got = threading.Event()
            c = mqtt.Client(client_id="paho-ws", transport="websockets", protocol=mqtt.MQTTv311)
            c.ws_set_options(path="/mqtt")
            c.username_pw_set("alice", "alice-pw")
            c.on_message = lambda *_: got.set()
            c.on_subscribe = lambda *_: c.publish("{{topic}}", "from-paho", qos=1)
            c.on_connect = lambda cl, u, f, rc: cl.subscribe("{{topic}}", qos=1) if rc == 0 else print("refused", rc)
            c.connect("127.0.0.1", {{Node.WsPort}})
            c.loop_start()
            ok = got.wait(15)
            c.disconnect(); c.loop_stop()
            print("round trip" if ok else "no message")
            """;
        var run = await Tools.RunAsync("/usr/bin/python3", ["-c", script], TimeSpan.FromSeconds(30));
        Assert.Equal((0, "round trip"), (run.ExitCode, run.Output.Trim()));
        Assert.Equal("from-paho", tcp.NextText());
    }

    [Fact]
    public async Task A_websocket_without_the_mqtt_subprotocol_or_a_plain_request_is_refused()
    {
        using var other = new ClientWebSocket();
        other.Options.AddSubProtocol("chat");
        var ex = await Assert.ThrowsAsync<WebSocketException>(() => other.ConnectAsync(new Uri($"ws://127.0.0.1:{Node.WsPort}/mqtt"), CancellationToken.None));
        Assert.Contains("400", ex.Message, StringComparison.Ordinal);

        using var http = new HttpClient();
        Assert.Equal(System.Net.HttpStatusCode.BadRequest, (await http.GetAsync($"http://127.0.0.1:{Node.WsPort}/mqtt")).StatusCode);

        // The WebSocket listener has the MQTT rules of TCP: a bad password is refused with its CONNACK code.
        using var mqtt = new ClientWebSocket();
        mqtt.Options.AddSubProtocol("mqtt");
        await mqtt.ConnectAsync(new Uri($"ws://127.0.0.1:{Node.WsPort}/mqtt"), CancellationToken.None);
        Assert.Equal("mqtt", mqtt.SubProtocol);
        await mqtt.SendAsync(MqttWireConnectWithPassword("ws-raw", "alice", "wrong"), WebSocketMessageType.Binary, true, CancellationToken.None);
        var buffer = new byte[16];
        var received = await mqtt.ReceiveAsync(buffer, CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(new byte[] { 0x20, 0x02, 0x00, 0x04 }, buffer[..received.Count]);
    }

    /// <summary>An MQTT 3.1.1 CONNECT with user name and password.</summary>
    private static byte[] MqttWireConnectWithPassword(string clientId, string user, string password)
    {
        static byte[] Utf8(string s)
        {
            var b = System.Text.Encoding.UTF8.GetBytes(s);
            return [(byte)(b.Length >> 8), (byte)b.Length, .. b];
        }
        byte[] body = [.. Utf8("MQTT"), 4, 0xC2, 0, 60, .. Utf8(clientId), .. Utf8(user), .. Utf8(password)];
        return [0x10, (byte)body.Length, .. body];
    }
}
