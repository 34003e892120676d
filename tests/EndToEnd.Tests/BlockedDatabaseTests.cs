using System.Diagnostics;
using Broker.Tests.Shared;
using Microsoft.Data.Sqlite;
using MQTTnet.Formatter;
using MQTTnet.Protocol;
using Xunit.Abstractions;

namespace Broker.EndToEnd.Tests;

/// <summary>
/// The SQLite driver blocks the calling thread for every statement, for as long as another writer holds the file
/// (busy_timeout). A node process with its database locked by another connection: the calls waiting for it (a
/// persistent session's catalog row, retained messages in the journal) hold the database dispatcher's threads, while
/// clients that need no database (clean sessions, QoS 1 between them) keep their usual pace on the thread pool, which
/// starts with one worker per core and, with every worker blocked, adds one only after half a second or more.
/// </summary>
public sealed class BlockedDatabaseTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Locked = TimeSpan.FromSeconds(3);

    /// <summary>The slowest round trip allowed while the database is locked (on an idle node they take about a millisecond).</summary>
    private static readonly TimeSpan Slowest = TimeSpan.FromMilliseconds(450);

    [Fact]
    public async Task Messages_between_clean_sessions_keep_flowing_while_another_writer_holds_the_sqlite_file()
    {
        var dataDir = Path.Combine(Path.GetTempPath(), "broker-lockeddb-" + Guid.NewGuid().ToString("N"));
        try
        {
            using var node = await NodeProcess.StartAsync(dataDir, "locked-db-node");
            var topic = Ids.New("free");
            await using var sub = await TestClient.ConnectAsync(node.MqttPort, Ids.New("free-sub"), MqttProtocolVersion.V311);
            await sub.SubscribeAsync(topic + "/#");
            await using var pub = await TestClient.ConnectAsync(node.MqttPort, Ids.New("free-pub"), MqttProtocolVersion.V311);
            await using var retainer = await TestClient.ConnectAsync(node.MqttPort, Ids.New("retainer"), MqttProtocolVersion.V311);
            for (var i = 0; i < 20; i++)
            {
                await RoundTripAsync(pub, sub, $"{topic}/warm{i}");
            }

            await using var locker = new SqliteConnection(new SqliteConnectionStringBuilder
            {
                DataSource = Path.Combine(dataDir, "broker.db"),
                Pooling = false,
                DefaultTimeout = 30,
            }.ToString());
            await locker.OpenAsync();
            await using var tx = (SqliteTransaction)await locker.BeginTransactionAsync(System.Data.IsolationLevel.Serializable);
            // A write takes the file's write lock at once; the node's writes now wait until the rollback below.
            await using (var cmd = locker.CreateCommand())
            {
                cmd.Transaction = tx;
                cmd.CommandText = "CREATE TABLE lock_holder (x INTEGER)";
                await cmd.ExecuteNonQueryAsync();
            }

            // Work that needs the database: persistent sessions (the catalog writes their rows before CONNACK) and
            // retained messages (the journal).
            var durable = Enumerable.Range(0, 4).Select(i => TestClient.ConnectAsync(node.MqttPort, Ids.New("durable"), MqttProtocolVersion.V311, clean: false)).ToList();
            for (var i = 0; i < 4; i++)
            {
                await retainer.PublishAsync($"{Ids.New("retained")}/{i}", "r", MqttQualityOfServiceLevel.AtMostOnce, retain: true);
            }

            var held = Stopwatch.StartNew();
            var slowest = TimeSpan.Zero;
            var trips = 0;
            while (held.Elapsed < Locked)
            {
                var took = await RoundTripAsync(pub, sub, $"{topic}/{trips}");
                slowest = took > slowest ? took : slowest;
                trips++;
            }
            Assert.All(durable, c => Assert.False(c.IsCompleted, "a persistent session was acknowledged while its catalog row could not be written"));
            await tx.RollbackAsync();

            var connected = await Task.WhenAll(durable).WaitAsync(TimeSpan.FromSeconds(30));
            foreach (var c in connected)
            {
                await c.DisposeAsync();
            }
            output.WriteLine($"{trips} QoS 1 round trips in {Locked.TotalSeconds} s with the database locked, the slowest {slowest.TotalMilliseconds:F1} ms");
            Assert.True(slowest < Slowest, $"a QoS 1 round trip between clean sessions took {slowest.TotalMilliseconds:F0} ms while the database was locked ({trips} round trips)\n{node.Log}");
            Assert.True(node.Terminate(TimeSpan.FromSeconds(30)), "clean stop on SIGTERM");
        }
        finally
        {
            try
            {
                Directory.Delete(dataDir, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }

    private static async Task<TimeSpan> RoundTripAsync(TestClient pub, TestClient sub, string topic)
    {
        var started = Stopwatch.StartNew();
        var ack = await pub.PublishAsync(topic, "m", MqttQualityOfServiceLevel.AtLeastOnce);
        Assert.True(ack.IsSuccess);
        Assert.Equal(topic, sub.Next(TimeSpan.FromSeconds(10)).Topic);
        return started.Elapsed;
    }
}
