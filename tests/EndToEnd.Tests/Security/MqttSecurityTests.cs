using System.Net;
using System.Net.Http.Headers;
using Broker.Actors.Messages;
using Broker.Tests.Shared;
using MQTTnet;
using MQTTnet.Adapter;
using MQTTnet.Formatter;
using MQTTnet.Protocol;

namespace Broker.EndToEnd.Tests.Security;

/// <summary>Authentication and authorization as clients meet them: MQTTnet (MQTT 5 and 3.1.1), mosquitto_pub/sub, curl-like HTTP.</summary>
public sealed class MqttSecurityTests(SecuredNodeFixture fixture) : IClassFixture<SecuredNodeFixture>
{
    private int Port => fixture.Node.MqttPort;

    private async Task<MqttClientConnectResultCode> ConnectCode(string? user, string? password, MqttProtocolVersion version,
        Action<MqttClientOptionsBuilder>? configure = null)
    {
        try
        {
            await using var c = await TestClient.ConnectAsync(Port, Ids.New("login"), version, configure: b =>
            {
                if (user is not null)
                {
                    b.WithCredentials(user, password);
                }
                configure?.Invoke(b);
            });
            return c.LastConnect!.ResultCode;
        }
        catch (MqttConnectingFailedException ex) when (ex.InnerException is null && ParseCode(ex.Message) is { } code)
        {
            return code;
        }
    }

    /// <summary>MQTTnet 5 reports a refusing CONNACK in the exception's message ("... with result code 'X'").</summary>
    private static MqttClientConnectResultCode? ParseCode(string message)
    {
        var match = System.Text.RegularExpressions.Regex.Match(message, "'([A-Za-z]+)'");
        return match.Success && Enum.TryParse<MqttClientConnectResultCode>(match.Groups[1].Value, out var code) ? code : null;
    }

    private async Task<TestClient> Login(string user, string password, string? clientId = null, MqttProtocolVersion version = MqttProtocolVersion.V500)
    {
        var client = await TestClient.ConnectAsync(Port, clientId ?? Ids.New(user), version, configure: b => b.WithCredentials(user, password));
        Assert.Equal(MqttClientConnectResultCode.Success, client.LastConnect!.ResultCode);
        return client;
    }

    [Theory]
    [InlineData(MqttProtocolVersion.V500)]
    [InlineData(MqttProtocolVersion.V311)]
    public async Task Logins_are_checked_against_a_password_file_made_by_mosquitto_passwd(MqttProtocolVersion version)
    {
        var denied = BrokerCounters.AuthDenied.Value;

        Assert.Equal(MqttClientConnectResultCode.Success, await ConnectCode("alice", "alice-pw", version));
        Assert.Equal(MqttClientConnectResultCode.Success, await ConnectCode("writer", "writer-pw", version));
        Assert.Equal(MqttClientConnectResultCode.BadUserNameOrPassword, await ConnectCode("alice", "wrong", version));
        Assert.Equal(MqttClientConnectResultCode.BadUserNameOrPassword, await ConnectCode("alice", null, version));
        Assert.Equal(MqttClientConnectResultCode.BadUserNameOrPassword, await ConnectCode("mallory", "alice-pw", version));
        Assert.Equal(MqttClientConnectResultCode.NotAuthorized, await ConnectCode(null, null, version));

        Assert.True(BrokerCounters.AuthDenied.Value - denied >= 4);
    }

    [Fact]
    public async Task Users_the_file_does_not_hold_are_asked_of_the_http_backend_and_remembered()
    {
        var calls = fixture.BackendCalls;
        Assert.Equal(MqttClientConnectResultCode.Success, await ConnectCode("carol", "carol-pw", MqttProtocolVersion.V500));
        Assert.Equal(calls + 1, fixture.BackendCalls);
        Assert.Equal(MqttClientConnectResultCode.BadUserNameOrPassword, await ConnectCode("carol", "nope", MqttProtocolVersion.V311));
        Assert.Equal(calls + 2, fixture.BackendCalls);

        var clientId = Ids.New("carol");
        await (await Login("carol", "carol-pw", clientId)).DisposeAsync();
        fixture.BackendUp = false;
        try
        {
            // A 503 from the user store is its answer (refused); a login it allowed is remembered (per client ID) and does not ask it.
            Assert.Equal(MqttClientConnectResultCode.BadUserNameOrPassword, await ConnectCode("carol", "carol-pw", MqttProtocolVersion.V500));
            var before = fixture.BackendCalls;
            await using var again = await Login("carol", "carol-pw", clientId);
            Assert.Equal(before, fixture.BackendCalls);
        }
        finally
        {
            fixture.BackendUp = true;
        }
    }

    private Task<RabbitMQ.Client.IConnection> AmqpLogin(string user, string password, string name) =>
        new RabbitMQ.Client.ConnectionFactory
        {
            HostName = "127.0.0.1", Port = fixture.Node.AmqpPort, UserName = user, Password = password, ClientProvidedName = name,
            AutomaticRecoveryEnabled = false,
        }.CreateConnectionAsync();

    private async Task AmqpRefused(string user, string password)
    {
        var ex = await Assert.ThrowsAnyAsync<Exception>(() => AmqpLogin(user, password, Ids.New("amqp")));
        Assert.True(ex is RabbitMQ.Client.Exceptions.AuthenticationFailureException || ex.InnerException is RabbitMQ.Client.Exceptions.AuthenticationFailureException,
            $"expected a refused login, got {ex}");
    }

    [Fact]
    public async Task Amqp_clients_log_in_as_users_of_the_password_file_and_of_the_http_backend()
    {
        var calls = fixture.BackendCalls;
        var denied = BrokerCounters.AuthDenied.Value;
        await using (var alice = await AmqpLogin("alice", "alice-pw", "amqp-alice"))
        {
            await using var channel = await alice.CreateChannelAsync();
            Assert.True(channel.IsOpen);
        }
        Assert.Equal(calls, fixture.BackendCalls);
        await using (var carol = await AmqpLogin("carol", "carol-pw", Ids.New("amqp-carol")))
        {
            await using var channel = await carol.CreateChannelAsync();
            Assert.True(channel.IsOpen);
        }
        Assert.Equal(calls + 1, fixture.BackendCalls);

        await AmqpRefused("carol", "nope");
        await AmqpRefused("alice", "wrong");
        Assert.Equal(calls + 2, fixture.BackendCalls);
        fixture.BackendUp = false;
        try
        {
            await AmqpRefused("carol", "carol-pw");
        }
        finally
        {
            fixture.BackendUp = true;
        }
        Assert.True(BrokerCounters.AuthDenied.Value - denied >= 3);
    }

    [Fact]
    public async Task Enhanced_authentication_is_refused_with_bad_authentication_method() =>
        Assert.Equal(MqttClientConnectResultCode.BadAuthenticationMethod,
            await ConnectCode("alice", "alice-pw", MqttProtocolVersion.V500, b => b.WithEnhancedAuthentication("SCRAM-SHA-1", [1, 2, 3])));

    [Theory]
    [InlineData(MqttProtocolVersion.V500, MqttClientConnectResultCode.NotAuthorized)]
    [InlineData(MqttProtocolVersion.V311, MqttClientConnectResultCode.NotAuthorized)]
    public async Task A_will_on_a_topic_the_client_may_not_write_refuses_the_connect(MqttProtocolVersion version, MqttClientConnectResultCode code)
    {
        Assert.Equal(code, await ConnectCode("writer", "writer-pw", version, b => b.WithWillTopic("wills/other").WithWillPayload("x")));
        Assert.Equal(MqttClientConnectResultCode.Success, await ConnectCode("writer", "writer-pw", version, b => b.WithWillTopic("wills/writer").WithWillPayload("x")));
    }

    [Fact]
    public async Task A_refused_publish_gets_0x87_in_mqtt5_and_is_acknowledged_but_not_routed_in_311()
    {
        var topic = "sensors/" + Ids.New("p") + "/temp";
        await using var reader = await Login("alice", "alice-pw");
        await reader.SubscribeAsync("sensors/#");
        await using var v5 = await Login("carol", "carol-pw");
        await using var v3 = await Login("carol", "carol-pw", version: MqttProtocolVersion.V311);
        var denied = BrokerCounters.AuthzDenied.Value;

        Assert.Equal(MqttClientPublishReasonCode.NotAuthorized, (await v5.PublishAsync(topic, "q1", MqttQualityOfServiceLevel.AtLeastOnce)).ReasonCode);
        // PUBREC 0x87 ends the QoS 2 flow (MQTTnet reports it as not successful; mosquitto_pub below names the code).
        Assert.False((await v5.PublishAsync(topic, "q2", MqttQualityOfServiceLevel.ExactlyOnce)).IsSuccess);
        await v5.PublishAsync(topic, "q0", MqttQualityOfServiceLevel.AtMostOnce);
        Assert.True((await v3.PublishAsync(topic, "v3q1", MqttQualityOfServiceLevel.AtLeastOnce)).IsSuccess);
        Assert.True((await v3.PublishAsync(topic, "v3q2", MqttQualityOfServiceLevel.ExactlyOnce)).IsSuccess);
        Assert.True(v5.Client.IsConnected && v3.Client.IsConnected);

        // What they may write still flows, and nothing refused came before it.
        Assert.True((await v5.PublishAsync("clients/" + v5.ClientId + "/x", "own", MqttQualityOfServiceLevel.AtLeastOnce)).IsSuccess);
        await using var writer = await Login("writer", "writer-pw");
        await writer.PublishAsync(topic, "allowed");
        Assert.Equal("allowed", reader.NextText());
        Assert.True(BrokerCounters.AuthzDenied.Value - denied >= 5);
    }

    [Theory]
    [InlineData(MqttProtocolVersion.V500, MqttClientSubscribeResultCode.NotAuthorized)]
    [InlineData(MqttProtocolVersion.V311, MqttClientSubscribeResultCode.UnspecifiedError)]
    public async Task Refused_filters_get_their_code_in_their_place_of_the_suback(MqttProtocolVersion version, MqttClientSubscribeResultCode refused)
    {
        await using var alice = await Login("alice", "alice-pw", version: version);
        var result = await alice.Client.SubscribeAsync(new MqttClientSubscribeOptionsBuilder()
            .WithTopicFilter("#")
            .WithTopicFilter("sensors/+/temp", MqttQualityOfServiceLevel.AtLeastOnce)
            .WithTopicFilter("sensors/secret")
            .WithTopicFilter("clients/" + alice.ClientId + "/inbox", MqttQualityOfServiceLevel.ExactlyOnce)
            .WithTopicFilter("carol/#")
            .Build());

        Assert.Equal(
            [refused, MqttClientSubscribeResultCode.GrantedQoS1, refused, MqttClientSubscribeResultCode.GrantedQoS2, refused],
            result.Items.Select(i => i.ResultCode));

        // Only refused filters: answered without the session.
        var none = await alice.Client.SubscribeAsync(new MqttClientSubscribeOptionsBuilder().WithTopicFilter("carol/x").Build());
        Assert.Equal([refused], none.Items.Select(i => i.ResultCode));
    }

    [Fact]
    public async Task Deny_lines_inside_a_granted_filter_hold_back_live_and_retained_messages_without_stalling_the_session()
    {
        await using var writer = await Login("writer", "writer-pw");
        await writer.PublishAsync("sensors/secret", "retained-secret", retain: true);
        await writer.PublishAsync("sensors/open", "retained-open", retain: true);
        await using var alice = await Login("alice", "alice-pw", version: MqttProtocolVersion.V311);
        await alice.SubscribeAsync("sensors/#", MqttQualityOfServiceLevel.ExactlyOnce);
        Assert.Equal("retained-open", alice.NextText());

        // More refused QoS 1 and 2 messages than the two the session keeps in flight: each is answered in the client's place.
        for (var i = 0; i < 5; i++)
        {
            await writer.PublishAsync("sensors/secret", "s" + i, i % 2 == 0 ? MqttQualityOfServiceLevel.AtLeastOnce : MqttQualityOfServiceLevel.ExactlyOnce);
        }
        await writer.PublishAsync("sensors/open", "after", MqttQualityOfServiceLevel.ExactlyOnce);

        Assert.Equal("after", alice.NextText());
        alice.ExpectNothing(TimeSpan.FromMilliseconds(300));
        await writer.PublishAsync("sensors/secret", "", retain: true);
        await writer.PublishAsync("sensors/open", "", retain: true);
    }

    [Fact]
    public async Task Mosquitto_clients_log_in_with_user_and_password_and_are_refused_with_the_wrong_one()
    {
        var topic = "sensors/" + Ids.New("mq") + "/temp";
        var port = Port.ToString(System.Globalization.CultureInfo.InvariantCulture);
        var sub = Tools.RunAsync("mosquitto_sub", ["-h", "127.0.0.1", "-p", port, "-u", "alice", "-P", "alice-pw", "-t", topic, "-C", "1", "-q", "1", "-W", "15"]);
        await using var probe = await Login("alice", "alice-pw");
        // mosquitto_sub's session lists its subscription in the admin API once it is subscribed.
        using var http = new HttpClient();
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", fixture.AdminSecret);
        await Wait.UntilAsync(async () => (await http.GetStringAsync(fixture.Node.AdminUrl + "/api/v1/sessions?state=connected&limit=1000")).Contains(topic, StringComparison.Ordinal),
            TimeSpan.FromSeconds(15), "mosquitto_sub to subscribe");

        var pub = await Tools.RunAsync("mosquitto_pub", ["-h", "127.0.0.1", "-p", port, "-u", "writer", "-P", "writer-pw", "-t", topic, "-m", "from-mosquitto_pub", "-q", "1"]);
        Assert.Equal(0, pub.ExitCode);
        var received = await sub;
        Assert.Equal((0, "from-mosquitto_pub"), (received.ExitCode, received.Output.Trim()));

        var wrong = await Tools.RunAsync("mosquitto_pub", ["-h", "127.0.0.1", "-p", port, "-u", "writer", "-P", "nope", "-t", topic, "-m", "x"]);
        Assert.Equal(4, wrong.ExitCode);   // 3.1.1 CONNACK 4: bad user name or password
        Assert.Contains("bad user name or password", wrong.Output, StringComparison.Ordinal);
        var anonymous = await Tools.RunAsync("mosquitto_pub", ["-V", "5", "-h", "127.0.0.1", "-p", port, "-t", topic, "-m", "x"]);
        Assert.Equal(0x87, anonymous.ExitCode);
        var refusedQos2 = await Tools.RunAsync("mosquitto_pub", ["-V", "5", "-h", "127.0.0.1", "-p", port, "-u", "alice", "-P", "alice-pw", "-t", "carol/x", "-m", "x", "-q", "2"]);
        Assert.Contains("Publish 1 failed: Not authorized", refusedQos2.Output, StringComparison.Ordinal);
        var refusedSub = await Tools.RunAsync("mosquitto_sub", ["-V", "5", "-h", "127.0.0.1", "-p", port, "-u", "alice", "-P", "alice-pw", "-t", "#", "-C", "1", "-W", "5"]);
        Assert.Contains("All subscription requests were denied", refusedSub.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_password_changed_in_the_file_takes_effect_without_a_restart()
    {
        var user = "temp" + Guid.NewGuid().ToString("N")[..8];
        Assert.Equal(MqttClientConnectResultCode.BadUserNameOrPassword, await ConnectCode(user, "pw1", MqttProtocolVersion.V500));
        await Tools.RunAsync("mosquitto_passwd", ["-b", fixture.PasswordFile, user, "pw1"]);
        await Wait.UntilAsync(async () => await ConnectCode(user, "pw1", MqttProtocolVersion.V500) == MqttClientConnectResultCode.Success,
            TimeSpan.FromSeconds(10), "the new user to log in");
        Edge.Security.PasswordFile.Update(fixture.PasswordFile, user, null);
        await Wait.UntilAsync(async () => await ConnectCode(user, "pw1", MqttProtocolVersion.V500) == MqttClientConnectResultCode.BadUserNameOrPassword,
            TimeSpan.FromSeconds(10), "the removed user to be refused");
    }

    [Fact]
    public async Task The_admin_api_needs_a_token_and_a_viewer_only_reads()
    {
        using var http = new HttpClient { BaseAddress = new Uri(fixture.Node.AdminUrl) };
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/health")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/ready")).StatusCode);

        var anonymous = await http.GetAsync("/api/v1/sessions");
        Assert.Equal(HttpStatusCode.Unauthorized, anonymous.StatusCode);
        Assert.Equal("""{"error":"unauthorized"}""", await anonymous.Content.ReadAsStringAsync());
        Assert.Equal("Bearer", anonymous.Headers.WwwAuthenticate.Single().Scheme);

        async Task<HttpResponseMessage> As(string secret, HttpMethod method, string path)
        {
            using var request = new HttpRequestMessage(method, path);
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", secret);
            return await http.SendAsync(request);
        }
        Assert.Equal(HttpStatusCode.Unauthorized, (await As(fixture.ViewerSecret + "x", HttpMethod.Get, "/api/v1/sessions")).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await As("look.", HttpMethod.Get, "/api/v1/sessions")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await As(fixture.ViewerSecret, HttpMethod.Get, "/api/v1/sessions")).StatusCode);
        var write = await As(fixture.ViewerSecret, HttpMethod.Delete, "/api/v1/sessions/someone");
        Assert.Equal(HttpStatusCode.Forbidden, write.StatusCode);
        Assert.Equal("""{"error":"forbidden"}""", await write.Content.ReadAsStringAsync());
        Assert.Equal(HttpStatusCode.OK, (await As(fixture.AdminSecret, HttpMethod.Get, "/api/v1/sessions")).StatusCode);
        Assert.NotEqual(HttpStatusCode.Forbidden, (await As(fixture.AdminSecret, HttpMethod.Delete, "/api/v1/sessions/someone")).StatusCode);
    }

    [Fact]
    public async Task Curl_gets_401_without_a_token_and_the_sessions_with_one()
    {
        var url = fixture.Node.AdminUrl + "/api/v1/sessions";
        var without = await Tools.RunAsync("curl", ["-s", "-w", "\n%{http_code}", url]);
        Assert.Equal(0, without.ExitCode);
        Assert.Equal("{\"error\":\"unauthorized\"}\n401", without.Output);
        var viewer = await Tools.RunAsync("curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Authorization: Bearer " + fixture.ViewerSecret, url]);
        Assert.Equal("200", viewer.Output);
        var viewerKick = await Tools.RunAsync("curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "DELETE", "-H", "Authorization: Bearer " + fixture.ViewerSecret, url + "/someone"]);
        Assert.Equal("403", viewerKick.Output);
        var health = await Tools.RunAsync("curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", fixture.Node.AdminUrl + "/health"]);
        Assert.Equal("200", health.Output);
    }
}
