using System.Net;
using System.Net.Sockets;
using System.Text;
using Broker.Edge.Security;

namespace Broker.Edge.Tests.Security;

/// <summary>The HTTP authentication backend against a real HTTP server on 127.0.0.1.</summary>
public sealed class HttpAuthBackendTests : IDisposable
{
    private readonly HttpListener _server = new();
    private readonly string _url;
    private int _calls;

    public HttpAuthBackendTests()
    {
        using var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        var port = ((IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop();
        _url = $"http://127.0.0.1:{port}/auth/";
        _server.Prefixes.Add(_url);
        _server.Start();
        _ = ServeAsync();
    }

    /// <summary>Allows any user whose password is "pw".</summary>
    private async Task ServeAsync()
    {
        while (_server.IsListening)
        {
            HttpListenerContext ctx;
            try
            {
                ctx = await _server.GetContextAsync();
            }
            catch (Exception ex) when (ex is HttpListenerException or ObjectDisposedException or InvalidOperationException)
            {
                return;
            }
            Interlocked.Increment(ref _calls);
            using var body = await System.Text.Json.JsonDocument.ParseAsync(ctx.Request.InputStream);
            ctx.Response.StatusCode = body.RootElement.GetProperty("password").GetString() == "pw" ? 200 : 403;
            ctx.Response.Close();
        }
    }

    [Fact]
    public async Task Allowed_logins_are_remembered_up_to_the_cache_bound_and_denials_never()
    {
        var backend = new HttpAuthBackend(_url, TimeSpan.FromSeconds(5), TimeSpan.FromMinutes(1), maxEntries: 3);
        var pw = Encoding.UTF8.GetBytes("pw");
        for (var i = 0; i < 3; i++)
        {
            Assert.Equal(AuthVerdict.Allowed, await backend.CheckAsync("c" + i, "u" + i, pw, "127.0.0.1:1"));
        }
        Assert.Equal((3, 3), (_calls, backend.CachedLogins));
        Assert.Equal(AuthVerdict.Allowed, await backend.CheckAsync("c1", "u1", pw, "127.0.0.1:2"));   // remembered: not asked
        Assert.Equal(3, _calls);

        // Crossing the bound: the fourth distinct login starts the cache afresh instead of growing it.
        Assert.Equal(AuthVerdict.Allowed, await backend.CheckAsync("c3", "u3", pw, "127.0.0.1:1"));
        Assert.Equal((4, 1), (_calls, backend.CachedLogins));
        for (var i = 0; i < 20; i++)
        {
            await backend.CheckAsync("flood" + i, "f", pw, "127.0.0.1:1");
            Assert.InRange(backend.CachedLogins, 1, 3);
        }

        // A denial is not remembered, and a different password is not the remembered login.
        Assert.Equal(AuthVerdict.BadCredentials, await backend.CheckAsync("c3", "u3", "nope"u8.ToArray(), "127.0.0.1:1"));
        var calls = _calls;
        Assert.Equal(AuthVerdict.BadCredentials, await backend.CheckAsync("c3", "u3", "nope"u8.ToArray(), "127.0.0.1:1"));
        Assert.Equal(calls + 1, _calls);
    }

    [Fact]
    public async Task A_backend_that_does_not_answer_is_unavailable()
    {
        _server.Stop();
        var backend = new HttpAuthBackend(_url, TimeSpan.FromSeconds(2), TimeSpan.FromMinutes(1), maxEntries: 3);
        Assert.Equal(AuthVerdict.Unavailable, await backend.CheckAsync("c", "u", "pw"u8.ToArray(), "127.0.0.1:1"));
        Assert.Equal(0, backend.CachedLogins);
    }

    public void Dispose() => _server.Close();
}
