using System.Text;
using Broker.Tests.Shared;
using MQTTnet.Formatter;
using MQTTnet.Protocol;
using Xunit.Abstractions;

namespace Broker.EndToEnd.Tests;

/// <summary>The node as a separate process, killed with SIGKILL: what was acknowledged must survive.</summary>
public sealed class CrashTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Acknowledged_qos1_messages_for_offline_persistent_sessions_survive_sigkill()
    {
        var dataDir = Path.Combine(Path.GetTempPath(), "broker-crash-" + Guid.NewGuid().ToString("N"));
        const int count = 200;
        var topic = "crash/" + Guid.NewGuid().ToString("N")[..8];
        try
        {
            using (var node = await NodeProcess.StartAsync(dataDir, "crash-node"))
            {
                foreach (var (id, version) in Subscribers)
                {
                    await TestClient.LeaveOfflineSessionAsync(node.MqttPort, id, topic, version, sessionExpiry: 3600);
                }
                await using var pub = await TestClient.ConnectAsync(node.MqttPort, "crash-pub");
                for (var i = 0; i < count; i++)
                {
                    var ack = await pub.PublishAsync(topic, "m" + i, MqttQualityOfServiceLevel.AtLeastOnce);
                    Assert.True(ack.IsSuccess);
                }
                node.Kill(); // right after the last PUBACK
            }

            using var restarted = await NodeProcess.StartAsync(dataDir, "crash-node");
            output.WriteLine($"restarted as pid {restarted.Pid}");
            // Published after the restart, before the subscribers return: their sessions must already be
            // routing again (remembered entities re-register their subscriptions).
            await using (var pub = await TestClient.ConnectAsync(restarted.MqttPort, "crash-pub-2"))
            {
                var ack = await pub.PublishAsync(topic, "after-restart", MqttQualityOfServiceLevel.AtLeastOnce);
                Assert.Equal(MQTTnet.MqttClientPublishReasonCode.Success, ack.ReasonCode);
            }
            using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{restarted.AdminPort}") };
            var started = DateTime.UtcNow;
            foreach (var (id, _) in Subscribers)
            {
                await Wait.UntilAsync(async () => (await http.GetAsync("/api/v1/sessions/" + id)).IsSuccessStatusCode,
                    TimeSpan.FromSeconds(60), $"session {id} listed after restart");
            }
            output.WriteLine($"sessions listed {(DateTime.UtcNow - started).TotalMilliseconds:F0} ms after ready (listed by the admin API)");
            foreach (var (id, version) in Subscribers)
            {
                await using var sub = await TestClient.ConnectAsync(restarted.MqttPort, id, version, clean: false, sessionExpiry: 3600);
                Assert.True(sub.LastConnect!.IsSessionPresent);
                var got = new List<string>();
                for (var i = 0; i <= count; i++)
                {
                    got.Add(sub.NextText(TimeSpan.FromSeconds(20)));
                }
                Assert.Equal(Enumerable.Range(0, count).Select(i => "m" + i).Append("after-restart"), got);
                output.WriteLine($"{id}: {got.Count} messages after SIGKILL and restart");
            }
            Assert.True(restarted.Terminate(TimeSpan.FromSeconds(30)), "clean stop on SIGTERM");
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

    private static readonly (string Id, MqttProtocolVersion Version)[] Subscribers =
    [
        ("crash-sub-311", MqttProtocolVersion.V311),
        ("crash-sub-5", MqttProtocolVersion.V500),
    ];
}
