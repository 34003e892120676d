using System.Net;
using System.Text.Json;
using Broker.Tests.Shared;
using RabbitMQ.Client;
using RabbitMQ.Client.Exceptions;

namespace Broker.AdminHttp.Tests;

/// <summary>/api/v1/amqp/queues: queues declared, filled, consumed, purged and deleted by a real RabbitMQ.Client.</summary>
public sealed class AmqpQueuesApiTests(AdminFixture fixture) : IClassFixture<AdminFixture>
{
    private static readonly string[] QueueFields =
        ["name", "durable", "exclusive", "auto_delete", "messages_ready", "messages_unacknowledged", "consumers", "node"];

    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(10);

    private Task<IConnection> Connect() => AmqpTestClient.ConnectAsync(fixture.Node.AmqpPort);

    private static string Path(string name, string suffix = "") => "/api/v1/amqp/queues/" + Uri.EscapeDataString(name) + suffix;

    private async Task<(HttpStatusCode Status, JsonElement Body)> Get(string path)
    {
        var response = await fixture.Http.GetAsync(path);
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        return (response.StatusCode, JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.Clone());
    }

    private static async Task<string?> ErrorOf(HttpResponseMessage response)
    {
        var text = await response.Content.ReadAsStringAsync();
        return text.Length == 0 ? null : JsonDocument.Parse(text).RootElement.GetProperty("error").GetString();
    }

    /// <summary>The listed queues whose names start with <paramref name="prefix"/>, in one page.</summary>
    private async Task<List<JsonElement>> Queues(string prefix)
    {
        var (status, body) = await Get("/api/v1/amqp/queues?prefix=" + Uri.EscapeDataString(prefix));
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("", body.GetProperty("next_page_token").GetString());
        Assert.False(body.TryGetProperty("unreachable_queues", out _));
        return [.. body.GetProperty("queues").EnumerateArray()];
    }

    private async Task<JsonElement?> Queue(string name) =>
        (await Queues(name)).Cast<JsonElement?>().FirstOrDefault(q => q!.Value.GetProperty("name").GetString() == name);

    private static (string, bool, bool, bool, int, int, int, string) Row(JsonElement q) => (
        q.GetProperty("name").GetString()!, q.GetProperty("durable").GetBoolean(), q.GetProperty("exclusive").GetBoolean(),
        q.GetProperty("auto_delete").GetBoolean(), q.GetProperty("messages_ready").GetInt32(), q.GetProperty("messages_unacknowledged").GetInt32(),
        q.GetProperty("consumers").GetInt32(), q.GetProperty("node").GetString()!);

    private static async Task Fill(IConnection connection, string queue, int count)
    {
        await using var publisher = await connection.ConfirmChannelAsync();
        for (var i = 0; i < count; i++)
        {
            await publisher.PublishTextAsync("", queue, "m" + i, persistent: true);
        }
    }

    [Fact]
    public async Task Queues_are_listed_with_their_flags_counts_consumers_and_node()
    {
        var prefix = Ids.New("qlist") + ".";
        await using var connection = await Connect();
        await using var channel = await connection.CreateChannelAsync();
        await channel.QueueDeclareAsync(prefix + "durable", durable: true, exclusive: false, autoDelete: false);
        await channel.QueueDeclareAsync(prefix + "exclusive", durable: false, exclusive: true, autoDelete: false);
        await channel.QueueDeclareAsync(prefix + "auto", durable: false, exclusive: false, autoDelete: true);
        await Fill(connection, prefix + "durable", 5);
        await Fill(connection, prefix + "exclusive", 1);
        // Two of the five delivered and left unacknowledged; one consumer on the auto-delete queue keeps it.
        await channel.BasicQosAsync(0, 2, false);
        var consumer = new RecordingConsumer(channel);
        await channel.BasicConsumeAsync(prefix + "durable", autoAck: false, consumer);
        consumer.Next();
        consumer.Next();
        await channel.BasicConsumeAsync(prefix + "auto", autoAck: true, new RecordingConsumer(channel));

        var node = fixture.Node.Name;
        (string, bool, bool, bool, int, int, int, string)[] expected =
        [
            (prefix + "auto", false, false, true, 0, 0, 1, node),
            (prefix + "durable", true, false, false, 3, 2, 1, node),
            (prefix + "exclusive", false, true, false, 1, 0, 0, node),
        ];
        List<JsonElement> rows = [];
        await Wait.UntilAsync(async () => (rows = await Queues(prefix)).Select(Row).SequenceEqual(expected), Patience,
            "the three queues listed with their counts");
        Assert.All(rows, q => Assert.Equal(QueueFields.Order(), q.EnumerateObject().Select(p => p.Name).Order()));
    }

    [Fact]
    public async Task Paging_with_every_limit_returns_each_queue_once_in_utf8_byte_order()
    {
        var prefix = Ids.New("qpage") + ".";
        // U+FF61 sorts before U+1F600 by UTF-8 bytes (and code points), after it by UTF-16 code units.
        string[] ordered = [.. new[] { "a", "a.b", "b/c", "z", "\u00e9", "\uff61", "\U0001F600" }.Select(s => prefix + s)];
        await using var connection = await Connect();
        await using var channel = await connection.CreateChannelAsync();
        foreach (var name in ordered.Reverse())
        {
            await channel.QueueDeclareAsync(name, durable: false, exclusive: false, autoDelete: false);
        }

        for (var limit = 1; limit <= ordered.Length + 1; limit++)
        {
            var names = new List<string>();
            var token = "";
            var pages = 0;
            do
            {
                var (status, body) = await Get($"/api/v1/amqp/queues?prefix={Uri.EscapeDataString(prefix)}&limit={limit}&page_token={Uri.EscapeDataString(token)}");
                Assert.Equal(HttpStatusCode.OK, status);
                var rows = body.GetProperty("queues").EnumerateArray().Select(q => q.GetProperty("name").GetString()!).ToList();
                Assert.InRange(rows.Count, 1, limit);
                names.AddRange(rows);
                token = body.GetProperty("next_page_token").GetString()!;
                pages++;
            }
            while (token.Length > 0);
            Assert.Equal(ordered, names);
            Assert.Equal((ordered.Length + limit - 1) / limit, pages);
        }
        Assert.Equal(ordered, (await Queues(prefix)).Select(q => q.GetProperty("name").GetString()));
    }

    [Fact]
    public async Task Purge_drops_the_ready_messages()
    {
        var queue = Ids.New("qpurge") + "/orders";
        await using var connection = await Connect();
        await using var channel = await connection.CreateChannelAsync();
        await channel.QueueDeclareAsync(queue, durable: true, exclusive: false, autoDelete: false);
        await Fill(connection, queue, 3);
        await Wait.UntilAsync(async () => (await Queue(queue))?.GetProperty("messages_ready").GetInt32() == 3, Patience, "three ready messages listed");

        var purge = await fixture.Http.DeleteAsync(Path(queue, "/contents"));

        Assert.Equal(HttpStatusCode.NoContent, purge.StatusCode);
        Assert.Equal(0, (await Queue(queue))!.Value.GetProperty("messages_ready").GetInt32());
        Assert.Null(await channel.BasicGetAsync(queue, autoAck: true));
    }

    [Fact]
    public async Task Delete_removes_the_queue_and_cancels_its_consumer()
    {
        var queue = Ids.New("qdelete") + "/jobs";
        await using var connection = await Connect();
        await using var channel = await connection.CreateChannelAsync();
        await channel.QueueDeclareAsync(queue, durable: true, exclusive: false, autoDelete: false);
        await Fill(connection, queue, 2);
        var consumer = new RecordingConsumer(channel);
        await channel.BasicConsumeAsync(queue, autoAck: false, consumer);

        var delete = await fixture.Http.DeleteAsync(Path(queue));

        Assert.Equal(HttpStatusCode.NoContent, delete.StatusCode);
        await consumer.Cancelled.WaitAsync(Patience);
        Assert.Null(await Queue(queue));
        await using var probe = await connection.CreateChannelAsync();
        var missing = await Assert.ThrowsAsync<OperationInterruptedException>(() => probe.QueueDeclarePassiveAsync(queue));
        Assert.Equal(404, missing.ShutdownReason!.ReplyCode);
        Assert.StartsWith("NOT_FOUND", missing.ShutdownReason.ReplyText, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Conditional_deletes_that_do_not_hold_are_refused_with_409_and_the_queue_stays()
    {
        var queue = Ids.New("qkeep");
        await using var connection = await Connect();
        await using var channel = await connection.CreateChannelAsync();
        await channel.QueueDeclareAsync(queue, durable: false, exclusive: false, autoDelete: false);
        await Fill(connection, queue, 1);

        var notEmpty = await fixture.Http.DeleteAsync(Path(queue, "?if_empty=true"));
        Assert.Equal(HttpStatusCode.Conflict, notEmpty.StatusCode);
        Assert.Equal($"PRECONDITION_FAILED - queue '{queue}' in vhost '/' not empty", await ErrorOf(notEmpty));

        await channel.BasicConsumeAsync(queue, autoAck: false, new RecordingConsumer(channel));
        await Wait.UntilAsync(async () => (await Queue(queue))?.GetProperty("consumers").GetInt32() == 1, Patience, "the consumer listed");
        var inUse = await fixture.Http.DeleteAsync(Path(queue, "?if_unused=true"));
        Assert.Equal(HttpStatusCode.Conflict, inUse.StatusCode);
        Assert.Equal($"PRECONDITION_FAILED - queue '{queue}' in vhost '/' in use", await ErrorOf(inUse));

        Assert.NotNull(await Queue(queue));
        await channel.QueueDeclarePassiveAsync(queue);
        Assert.Equal(HttpStatusCode.NoContent, (await fixture.Http.DeleteAsync(Path(queue, "?if_empty=false&if_unused=false"))).StatusCode);
        Assert.Null(await Queue(queue));
    }

    [Fact]
    public async Task Unknown_queues_and_bad_parameters_get_json_errors()
    {
        var unknown = Ids.New("qnone");
        foreach (var path in new[] { Path(unknown), Path(unknown, "/contents") })
        {
            var response = await fixture.Http.DeleteAsync(path);
            Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
            Assert.Equal("queue not found", await ErrorOf(response));
        }
        var badToken = await Get("/api/v1/amqp/queues?page_token=nonsense");
        Assert.Equal((HttpStatusCode.BadRequest, "invalid page_token"), (badToken.Status, badToken.Body.GetProperty("error").GetString()));
        var badLimit = await Get("/api/v1/amqp/queues?limit=-1");
        Assert.Equal((HttpStatusCode.BadRequest, "limit must be a non-negative integer"), (badLimit.Status, badLimit.Body.GetProperty("error").GetString()));
        var badFlag = await fixture.Http.DeleteAsync(Path(unknown, "?if_empty=maybe"));
        Assert.Equal(HttpStatusCode.BadRequest, badFlag.StatusCode);
        Assert.Equal("if_empty must be true or false", await ErrorOf(badFlag));
        var (status, none) = await Get("/api/v1/amqp/queues?prefix=" + unknown);
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal(0, none.GetProperty("queues").GetArrayLength());
        Assert.Equal("", none.GetProperty("next_page_token").GetString());
    }
}
