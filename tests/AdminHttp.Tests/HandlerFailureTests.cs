using System.Collections.Concurrent;
using System.Net;
using System.Text.Json;
using Akka.Actor;
using Akka.Event;

namespace Broker.AdminHttp.Tests;

/// <summary>
/// A handler that throws (a bug) is logged as an error and answered 500 with the contract's JSON error, never passed off
/// as 503; the server goes on answering. The failing part is the readiness check the node hands the admin server: an
/// admin server on the fixture node's actor system is given one that throws.
/// </summary>
public sealed class HandlerFailureTests(AdminFixture fixture) : IClassFixture<AdminFixture>
{
    [Fact]
    public async Task A_handler_that_throws_is_logged_and_answered_500_as_json()
    {
        var system = fixture.Node.Node.System;
        var errors = new ConcurrentQueue<Error>();
        var collector = system.ActorOf(Props.Create(() => new ErrorCollector(errors)));
        system.EventStream.Subscribe(collector, typeof(Error));
        var failures = 0;
        await using var server = await AdminServer.StartAsync(system, "127.0.0.1", 0, TimeSpan.FromSeconds(5), 100, resting: null,
            () => Interlocked.Increment(ref failures) == 1 ? throw new InvalidOperationException("readiness bug") : (true, ""));
        try
        {
            using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{server.Port}") };
            using var failed = await http.GetAsync("/ready");
            Assert.Equal(HttpStatusCode.InternalServerError, failed.StatusCode);
            Assert.Equal("application/json", failed.Content.Headers.ContentType?.MediaType);
            var body = JsonDocument.Parse(await failed.Content.ReadAsStringAsync()).RootElement;
            Assert.Equal("internal error", body.GetProperty("error").GetString());
            // The bug's details stay in the log, not in the answer.
            Assert.DoesNotContain("readiness bug", body.ToString(), StringComparison.Ordinal);
            await Broker.Tests.Shared.Wait.UntilAsync(() => errors.Any(e => e.Cause is InvalidOperationException { Message: "readiness bug" }
                    && e.Message.ToString()!.Contains("/ready", StringComparison.Ordinal)),
                TimeSpan.FromSeconds(10), "the failure logged as an error with its exception and path");

            // The next request is served.
            using var ready = await http.GetAsync("/ready");
            Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
        }
        finally
        {
            system.EventStream.Unsubscribe(collector);
            system.Stop(collector);
        }
    }

    private sealed class ErrorCollector : ReceiveActor
    {
        public ErrorCollector(ConcurrentQueue<Error> errors) => Receive<Error>(errors.Enqueue);
    }
}
