using System.Text;
using Broker.Tests.Shared;
using RabbitMQ.Client;
using RabbitMQ.Client.Exceptions;

namespace Broker.EndToEnd.Tests.Security;

/// <summary>RabbitMQ's permissions and the MQTT ACL on amq.topic, met by RabbitMQ.Client as an application meets them.</summary>
public sealed class AmqpPermissionTests : IAsyncLifetime
{
    private readonly string _folder = Path.Combine(Path.GetTempPath(), "broker-perm-" + Guid.NewGuid().ToString("N"));
    private TestNode _node = null!;

    public async Task InitializeAsync()
    {
        Directory.CreateDirectory(_folder);
        var passwords = Path.Combine(_folder, "passwords");
        Edge.Security.PasswordFile.Update(passwords, "carl", "carl-pw");
        await File.WriteAllTextAsync(Path.Combine(_folder, "permissions"), """
            carl  ^carl\.  ^(carl\..*|amq\.default|amq\.topic)$  ^(carl\..*|amq\.topic)$
            """);
        await File.WriteAllTextAsync(Path.Combine(_folder, "acl"), """
            user carl
            topic readwrite carl/#
            """);
        _node = await TestNode.StartAsync($$"""
            broker.mqtt.password-file = "{{passwords}}"
            broker.mqtt.acl-file = "{{Path.Combine(_folder, "acl")}}"
            broker.amqp.permissions-file = "{{Path.Combine(_folder, "permissions")}}"
            """);
    }

    public async Task DisposeAsync()
    {
        await _node.DisposeAsync();
        _node.DeleteData();
        Directory.Delete(_folder, recursive: true);
    }

    private Task<IConnection> Connect(string user, string password) =>
        new ConnectionFactory { HostName = "127.0.0.1", Port = _node.AmqpPort, UserName = user, Password = password }.CreateConnectionAsync();

    private static async Task<ushort> RefusedWith(IConnection connection, Func<IChannel, Task> act)
    {
        await using var channel = await connection.CreateChannelAsync();
        var ex = await Assert.ThrowsAnyAsync<OperationInterruptedException>(async () =>
        {
            await act(channel);
            // A refused publish has no answer of its own: the channel's close comes with the next round trip.
            await channel.QueueDeclarePassiveAsync("carl.q");
        });
        return ex.ShutdownReason!.ReplyCode;
    }

    [Fact]
    public async Task A_password_file_user_works_within_its_permissions_and_is_refused_with_403_beyond_them()
    {
        await using var connection = await Connect("carl", "carl-pw");
        await using (var channel = await connection.CreateChannelAsync())
        {
            await channel.QueueDeclareAsync("carl.q", durable: false, exclusive: false, autoDelete: false);
            await channel.BasicPublishAsync("", "carl.q", Encoding.UTF8.GetBytes("mine"));
            BasicGetResult? got = null;
            await Wait.UntilAsync(async () => (got = await channel.BasicGetAsync("carl.q", autoAck: true)) is not null, TimeSpan.FromSeconds(10), "the message");
            Assert.Equal("mine", Encoding.UTF8.GetString(got!.Body.Span));
            await channel.QueueBindAsync("carl.q", "amq.topic", "carl.#");
        }

        Assert.Equal(403, await RefusedWith(connection, c => c.QueueDeclareAsync("other.q", false, false, false)));
        Assert.Equal(403, await RefusedWith(connection, c => c.BasicPublishAsync("amq.fanout", "", Encoding.UTF8.GetBytes("x")).AsTask()));
        Assert.Equal(403, await RefusedWith(connection, c => c.QueueBindAsync("carl.q", "amq.direct", "k")));
        Assert.True(connection.IsOpen);   // a refusal closes the channel, not the connection

        await Assert.ThrowsAnyAsync<Exception>(() => Connect("carl", "wrong"));
    }

    [Fact]
    public async Task Amq_topic_keys_obey_the_mqtt_acl_of_the_same_user()
    {
        await using var connection = await Connect("carl", "carl-pw");
        await using (var channel = await connection.CreateChannelAsync())
        {
            await channel.QueueDeclareAsync("carl.t", false, false, true);
            await channel.QueueBindAsync("carl.t", "amq.topic", "carl.*.temp");
            await using var mqtt = await TestClient.ConnectAsync(_node.MqttPort, Ids.New("carl"), configure: b => b.WithCredentials("carl", "carl-pw"));
            await mqtt.SubscribeAsync("carl/#");
            await channel.BasicPublishAsync("amq.topic", "carl.k1.temp", Encoding.UTF8.GetBytes("to-mqtt"));
            Assert.Equal("carl/k1/temp", mqtt.Next().Topic);
        }
        // Writing an MQTT topic the ACL does not grant, or reading one through a binding.
        Assert.Equal(403, await RefusedWith(connection, c => c.BasicPublishAsync("amq.topic", "alice.k1", Encoding.UTF8.GetBytes("x")).AsTask()));
        Assert.Equal(403, await RefusedWith(connection, c => c.QueueBindAsync("carl.t", "amq.topic", "#")));
    }
}
