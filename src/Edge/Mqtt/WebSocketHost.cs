using System.Net;
using System.Security.Authentication;
using Broker.Edge.Hosting;
using Broker.Edge.Security;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Broker.Edge.Mqtt;

/// <summary>
/// MQTT over WebSocket (MQTT 5 §6, 3.1.1 §6): <c>ws://host:8083/mqtt</c> and, with a TLS certificate,
/// <c>wss://host:9443/mqtt</c>, served by Kestrel. The client must offer the subprotocol <c>mqtt</c> (or <c>mqttv3.1</c>,
/// which MQTT 3.1 clients use); one that offers only others gets 400. A request without any subprotocol is taken too
/// (some clients send none). Each WebSocket then runs through the same MQTT listener machinery as a TCP connection
/// (limits, deadlines, shutdown): <see cref="SocketListener{T}.ServeAsync"/>.
/// </summary>
internal sealed class WebSocketHost : IAsyncDisposable
{
    public const string Path = "/mqtt";

    private static readonly string[] Subprotocols = ["mqtt", "mqttv3.1"];

    private readonly WebApplication _app;
    private readonly MqttListener _listener;

    private WebSocketHost(WebApplication app, MqttListener listener)
    {
        _app = app;
        _listener = listener;
    }

    /// <summary>0 when off.</summary>
    public int Port { get; private set; }

    /// <summary>0 when off.</summary>
    public int TlsPort { get; private set; }

    /// <summary>Starts the WebSocket listeners; <paramref name="port"/> and <paramref name="tlsPort"/> 0 = that one off, -1 = a free port (tests).</summary>
    public static async Task<WebSocketHost?> StartAsync(string host, int port, int tlsPort, ServerTls? tls, MqttListener listener)
    {
        tlsPort = tls is null ? 0 : tlsPort;
        if (port == 0 && tlsPort == 0)
        {
            return null;
        }
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrelHttpsConfiguration();
        builder.WebHost.ConfigureKestrel(o =>
        {
            var ip = IPAddress.TryParse(host, out var parsed) ? parsed : IPAddress.Any;
            if (port != 0)
            {
                o.Listen(ip, Math.Max(port, 0));
            }
            if (tlsPort != 0)
            {
                o.Listen(ip, Math.Max(tlsPort, 0), listen => listen.UseHttps(https =>
                {
                    https.SslProtocols = SslProtocols.Tls12 | SslProtocols.Tls13;
                    https.ServerCertificateSelector = (_, _) => tls!.Certificate;
                }));
            }
        });
        var app = builder.Build();
        // Keep-alive is MQTT's (PINGREQ): no WebSocket pings of the server's own.
        app.UseWebSockets(new WebSocketOptions { KeepAliveInterval = TimeSpan.Zero });
        app.Map(Path, (RequestDelegate)(ctx => ServeAsync(ctx, listener)));
        await app.StartAsync().ConfigureAwait(false);
        var server = new WebSocketHost(app, listener);
        var addresses = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Select(a => new Uri(a)).ToList();
        server.Port = addresses.FirstOrDefault(a => a.Scheme == "http")?.Port ?? 0;
        server.TlsPort = addresses.FirstOrDefault(a => a.Scheme == "https")?.Port ?? 0;
        return server;
    }

    private static async Task ServeAsync(HttpContext ctx, MqttListener listener)
    {
        if (!ctx.WebSockets.IsWebSocketRequest)
        {
            ctx.Response.StatusCode = 400;
            await ctx.Response.WriteAsync("MQTT over WebSocket: connect with a WebSocket client and subprotocol mqtt\n").ConfigureAwait(false);
            return;
        }
        var offered = ctx.WebSockets.WebSocketRequestedProtocols;
        var protocol = offered.FirstOrDefault(p => Subprotocols.Contains(p, StringComparer.OrdinalIgnoreCase));
        if (offered.Count > 0 && protocol is null)
        {
            ctx.Response.StatusCode = 400;
            await ctx.Response.WriteAsync("subprotocol mqtt (or mqttv3.1) required\n").ConfigureAwait(false);
            return;
        }
        using var webSocket = await ctx.WebSockets.AcceptWebSocketAsync(protocol).ConfigureAwait(false);
        var remote = ctx.Connection.RemoteIpAddress is { } address ? new IPEndPoint(address, ctx.Connection.RemotePort) : null;
        if (!await listener.ServeAsync(new WebSocketLink(webSocket, remote)).ConfigureAwait(false))
        {
            // Refused by the connection limits (counted and logged): 1013 Try Again Later.
            await webSocket.CloseAsync((System.Net.WebSockets.WebSocketCloseStatus)1013, "connection limit", CancellationToken.None).ConfigureAwait(false);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync().ConfigureAwait(false);
        await _app.DisposeAsync().ConfigureAwait(false);
    }
}
