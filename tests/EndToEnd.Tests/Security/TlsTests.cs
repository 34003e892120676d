using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using Broker.Actors.Messages;
using Broker.Tests.Shared;
using MQTTnet;
using MQTTnet.Protocol;
using RabbitMQ.Client;

namespace Broker.EndToEnd.Tests.Security;

/// <summary>A node with TLS listeners beside the plain ones: a certificate from a CA, client certificates verified, CN as user name.</summary>
public sealed class TlsNodeFixture : IAsyncLifetime
{
    private readonly string _folder = Path.Combine(Path.GetTempPath(), "broker-tls-" + Guid.NewGuid().ToString("N"));

    public TestCertificates Certificates { get; private set; } = null!;

    public TestNode Node { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Certificates = new TestCertificates(_folder);
        var passwords = Path.Combine(_folder, "passwords");
        Edge.Security.PasswordFile.Update(passwords, "alice", "alice-pw");
        var permissions = Path.Combine(_folder, "permissions");
        await File.WriteAllTextAsync(permissions, """
            guest  .*  .*  .*
            alice  ^alice\.  ^(alice\..*|amq\.default)$  ^alice\.
            """);
        Node = await TestNode.StartAsync($$"""
            broker.mqtt.password-file = "{{passwords}}"
            broker.amqp.permissions-file = "{{permissions}}"
            broker.tls.cert-file = "{{Certificates.ServerCertFile}}"
            broker.tls.key-file = "{{Certificates.ServerKeyFile}}"
            broker.tls.ca-file = "{{Certificates.CaFile}}"
            broker.tls.cn-as-username = true
            broker.tls.handshake-timeout = 2s
            broker.mqtt-tls-port = {{TestCertificates.FreePort()}}
            broker.amqp-tls-port = {{TestCertificates.FreePort()}}
            broker.admin-tls-port = {{TestCertificates.FreePort()}}
            broker.ws-port = -1
            broker.wss-port = -1
            """);
    }

    public async Task DisposeAsync()
    {
        await Node.DisposeAsync();
        Node.DeleteData();
        Certificates.Dispose();
        Directory.Delete(_folder, recursive: true);
    }
}

public sealed class TlsTests(TlsNodeFixture fixture) : IClassFixture<TlsNodeFixture>
{
    private TestCertificates Certs => fixture.Certificates;

    private string TlsPort => fixture.Node.Node.MqttTlsPort.ToString(System.Globalization.CultureInfo.InvariantCulture);

    private Task<TestClient> ConnectTls(string clientId, Action<MqttClientOptionsBuilder>? more = null) =>
        TestClient.ConnectAsync(fixture.Node.Node.MqttTlsPort, clientId, configure: b =>
        {
            b.WithTlsOptions(o => o.UseTls().WithTargetHost("localhost").WithSslProtocols(SslProtocols.Tls12 | SslProtocols.Tls13)
                .WithCertificateValidationHandler(e => Certs.ValidateServer(e.Certificate)));
            more?.Invoke(b);
        });

    [Fact]
    public async Task Mqtt_over_tls_and_plain_tcp_reach_the_same_broker()
    {
        await using var secure = await ConnectTls(Ids.New("tls"), b => b.WithCredentials("alice", "alice-pw"));
        var topic = "tls/" + Ids.New("t");
        await secure.SubscribeAsync(topic);
        await using var plain = await TestClient.ConnectAsync(fixture.Node.MqttPort, Ids.New("plain"), configure: b => b.WithCredentials("alice", "alice-pw"));
        await plain.PublishAsync(topic, "across");
        Assert.Equal("across", secure.NextText());

        // 100 KB each way through TLS records.
        var big = new string('x', 100_000);
        await secure.PublishAsync(topic, big);
        Assert.Equal(big, secure.NextText());
    }

    [Fact]
    public async Task Mosquitto_clients_use_tls_with_a_cafile_and_a_client_certificate_names_the_user()
    {
        var topic = "tls/" + Ids.New("mq");
        var (certFile, keyFile, _) = Certs.WriteClient("alice");
        var sub = Tools.RunAsync("mosquitto_sub", ["-h", "localhost", "-p", TlsPort, "--cafile", Certs.CaFile, "--cert", certFile, "--key", keyFile,
            "-t", topic, "-C", "1", "-q", "1", "-W", "15", "-V", "5"]);
        await using var plain = await TestClient.ConnectAsync(fixture.Node.MqttPort, Ids.New("plain"), configure: b => b.WithCredentials("alice", "alice-pw"));
        // Publish (retained) until the TLS subscriber has it: no bare sleep waiting for it to subscribe.
        await plain.PublishAsync(topic, "over-tls", retain: true);
        var received = await sub;
        Assert.Equal((0, "over-tls"), (received.ExitCode, received.Output.Trim()));
        await plain.PublishAsync(topic, "", retain: true);

        // A password over TLS works too; no password and no certificate is refused as anonymous.
        var pub = await Tools.RunAsync("mosquitto_pub", ["-h", "localhost", "-p", TlsPort, "--cafile", Certs.CaFile, "-u", "alice", "-P", "alice-pw", "-t", topic, "-m", "x"]);
        Assert.Equal(0, pub.ExitCode);
        var anonymous = await Tools.RunAsync("mosquitto_pub", ["-h", "localhost", "-p", TlsPort, "--cafile", Certs.CaFile, "-t", topic, "-m", "x"]);
        Assert.Equal(5, anonymous.ExitCode);
    }

    [Fact]
    public async Task A_certificate_from_an_unknown_authority_or_plain_bytes_end_in_the_handshake()
    {
        var failures = BrokerCounters.TlsHandshakeFailures.Value;
        var (certFile, keyFile, _) = Certs.WriteClient("mallory", trusted: false);
        var refused = await Tools.RunAsync("mosquitto_pub", ["-h", "localhost", "-p", TlsPort, "--cafile", Certs.CaFile, "--cert", certFile, "--key", keyFile,
            "-t", "x", "-m", "x"]);
        Assert.NotEqual(0, refused.ExitCode);

        // An MQTT CONNECT in plain text on the TLS port: no handshake, the connection ends.
        using var raw = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await raw.ConnectAsync(IPAddress.Loopback, fixture.Node.Node.MqttTlsPort);
        await raw.SendAsync(MqttWire.Connect("plain-on-tls", 4), SocketFlags.None);
        await MqttWire.ReadUntilClosedAsync(raw, TimeSpan.FromSeconds(10));

        await Wait.UntilAsync(() => BrokerCounters.TlsHandshakeFailures.Value - failures >= 2, TimeSpan.FromSeconds(10), "two failed handshakes counted");
        await using var fine = await ConnectTls(Ids.New("after"), b => b.WithCredentials("alice", "alice-pw"));
        Assert.True(fine.Client.IsConnected);
    }

    [Fact]
    public async Task Clients_limited_to_tls_1_2_or_to_tls_1_3_both_connect()
    {
        // That nothing older is offered is ServerTlsTests' (this machine's OpenSSL would refuse TLS 1.1 on the client side anyway).
        foreach (var protocol in new[] { SslProtocols.Tls12, SslProtocols.Tls13 })
        {
            Assert.Equal(protocol, await Negotiate(protocol));
        }
    }

    private async Task<SslProtocols> Negotiate(SslProtocols protocol)
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(IPAddress.Loopback, fixture.Node.Node.MqttTlsPort);
        await using var ssl = new SslStream(new NetworkStream(socket, ownsSocket: false), false, (_, c, _, _) => Certs.ValidateServer(c));
        await ssl.AuthenticateAsClientAsync(new SslClientAuthenticationOptions { TargetHost = "localhost", EnabledSslProtocols = protocol })
            .WaitAsync(TimeSpan.FromSeconds(10));
        return ssl.SslProtocol;
    }

    private ConnectionFactory AmqpsFactory(string user, string password) => new()
    {
        HostName = "localhost",
        Port = fixture.Node.Node.AmqpTlsPort,
        UserName = user,
        Password = password,
        AutomaticRecoveryEnabled = false,
        Ssl = new SslOption
        {
            Enabled = true,
            ServerName = "localhost",
            Version = SslProtocols.Tls12 | SslProtocols.Tls13,
            CertificateValidationCallback = (_, c, _, _) => Certs.ValidateServer(c),
        },
    };

    [Fact]
    public async Task Amqp_over_tls_with_rabbitmq_client()
    {
        await using var connection = await AmqpsFactory("guest", "guest").CreateConnectionAsync();
        await using var channel = await connection.CreateChannelAsync();
        var queue = (await channel.QueueDeclareAsync("", false, true, true)).QueueName;
        await channel.BasicPublishAsync("", queue, System.Text.Encoding.UTF8.GetBytes("amqps"));
        BasicGetResult? got = null;
        await Wait.UntilAsync(async () => (got = await channel.BasicGetAsync(queue, autoAck: true)) is not null, TimeSpan.FromSeconds(10), "the message over AMQPS");
        Assert.Equal("amqps", System.Text.Encoding.UTF8.GetString(got!.Body.Span));
    }

    [Fact]
    public async Task Amqp_over_tls_keeps_a_users_permissions()
    {
        await using var connection = await AmqpsFactory("alice", "alice-pw").CreateConnectionAsync();
        await using (var channel = await connection.CreateChannelAsync())
        {
            await channel.QueueDeclareAsync("alice.tls", durable: false, exclusive: false, autoDelete: true);
            await channel.BasicPublishAsync("", "alice.tls", System.Text.Encoding.UTF8.GetBytes("mine"));
            BasicGetResult? got = null;
            await Wait.UntilAsync(async () => (got = await channel.BasicGetAsync("alice.tls", autoAck: true)) is not null, TimeSpan.FromSeconds(10), "alice's message over AMQPS");
        }
        await using (var channel = await connection.CreateChannelAsync())
        {
            var refused = await Assert.ThrowsAnyAsync<RabbitMQ.Client.Exceptions.OperationInterruptedException>(
                () => channel.QueueDeclareAsync("bob.tls", durable: false, exclusive: false, autoDelete: true));
            Assert.Equal(403, refused.ShutdownReason!.ReplyCode);
        }
        Assert.True(connection.IsOpen);
        var wrong = await Assert.ThrowsAnyAsync<Exception>(() => AmqpsFactory("alice", "wrong").CreateConnectionAsync());
        Assert.True(wrong is RabbitMQ.Client.Exceptions.AuthenticationFailureException || wrong.InnerException is RabbitMQ.Client.Exceptions.AuthenticationFailureException, wrong.ToString());
    }

    [Fact]
    public async Task The_admin_api_answers_over_https_and_a_new_certificate_is_used_without_a_restart()
    {
        X509Certificate2? seen = null;
        using var handler = new HttpClientHandler
        {
            ServerCertificateCustomValidationCallback = (_, c, _, _) =>
            {
                seen = c is null ? null : X509CertificateLoader.LoadCertificate(c.RawData);
                return Certs.ValidateServer(c);
            },
        };
        using var https = new HttpClient(handler);
        var url = $"https://localhost:{fixture.Node.Node.AdminTlsPort}/health";
        Assert.Equal(HttpStatusCode.OK, (await https.GetAsync(url)).StatusCode);
        Assert.Equal("CN=server-1", seen!.Subject);

        var replacement = Certs.WriteServer("server-2");
        try
        {
            // Every new connection (HTTPS or MQTTS) gets the certificate in force when its handshake starts.
            await Wait.UntilAsync(async () =>
            {
                using var fresh = new HttpClient(new HttpClientHandler { ServerCertificateCustomValidationCallback = handler.ServerCertificateCustomValidationCallback });
                await fresh.GetAsync(url);
                return seen?.Subject == "CN=server-2";
            }, TimeSpan.FromSeconds(15), "the new certificate on HTTPS");
            await using var mqtt = await ConnectTls(Ids.New("renewed"), b => b.WithCredentials("alice", "alice-pw"));
            Assert.True(mqtt.Client.IsConnected);
        }
        finally
        {
            replacement.Dispose();
        }
    }
}
