using Broker.AdminHttp.Security;
using Broker.Edge.Hosting;

namespace Broker.Edge.Security;

/// <summary>
/// The node executable's commands for secrets files, so that no mosquitto install is needed:
/// <code>
///   passwd [-c] [-D] [--stdin] FILE USER    set (prompting twice, or one line from stdin) or delete (-D) a user's password
///   token add NAME viewer|admin [--file F]   add an admin API token and print its secret, once
///   token remove NAME [--file F]             remove a token
///   token list [--file F]                    names and roles
/// </code>
/// The tokens file is broker.admin.tokens-file (BROKER_ADMIN_TOKENS_FILE) unless --file names one.
/// </summary>
public static class SecurityCommands
{
    /// <summary>The exit code of the command in <paramref name="args"/>, or null when they name none (start a node).</summary>
    public static int? Run(string[] args, TextReader input, TextWriter output, TextWriter error)
    {
        if (args.Length == 0)
        {
            return null;
        }
        try
        {
            return args[0] switch
            {
                "passwd" => Passwd(args[1..], input, output, error),
                "token" => Token(args[1..], output, error),
                _ => null,
            };
        }
        catch (Exception ex) when (ex is ArgumentException or FormatException or IOException or UnauthorizedAccessException)
        {
            error.WriteLine(ex.Message);
            return 1;
        }
    }

    private static int Passwd(string[] args, TextReader input, TextWriter output, TextWriter error)
    {
        var flags = args.Where(a => a.StartsWith('-')).ToHashSet(StringComparer.Ordinal);
        var rest = args.Where(a => !a.StartsWith('-')).ToArray();
        if (rest.Length != 2 || flags.Except(["-c", "-D", "--stdin"]).Any())
        {
            error.WriteLine("usage: passwd [-c] [-D] [--stdin] FILE USER   (-c: start a new file, -D: delete USER, --stdin: read the password from one line of input)");
            return 2;
        }
        var (path, user) = (rest[0], rest[1]);
        if (flags.Contains("-D"))
        {
            if (!PasswordFile.Update(path, user, null))
            {
                error.WriteLine($"{path} has no user '{user}'");
                return 1;
            }
            output.WriteLine($"removed {user} from {path}");
            return 0;
        }
        string? password;
        if (flags.Contains("--stdin"))
        {
            password = input.ReadLine();
        }
        else
        {
            password = Prompt("Password: ", input, error);
            if (password is not null && Prompt("Reenter password: ", input, error) != password)
            {
                error.WriteLine("the passwords do not match");
                return 1;
            }
        }
        if (string.IsNullOrEmpty(password))
        {
            error.WriteLine("no password given");
            return 1;
        }
        if (flags.Contains("-c"))
        {
            File.Delete(path);
        }
        PasswordFile.Update(path, user, password);
        output.WriteLine($"set the password of {user} in {path}");
        return 0;
    }

    /// <summary>Reads a line without echoing it when the input is the terminal.</summary>
    private static string? Prompt(string prompt, TextReader input, TextWriter error)
    {
        error.Write(prompt);
        if (!ReferenceEquals(input, Console.In) || Console.IsInputRedirected)
        {
            return input.ReadLine();
        }
        var text = new System.Text.StringBuilder();
        while (true)
        {
            var key = Console.ReadKey(intercept: true);
            if (key.Key == ConsoleKey.Enter)
            {
                error.WriteLine();
                return text.ToString();
            }
            if (key.Key == ConsoleKey.Backspace)
            {
                if (text.Length > 0)
                {
                    text.Length--;
                }
            }
            else if (!char.IsControl(key.KeyChar))
            {
                text.Append(key.KeyChar);
            }
        }
    }

    private static int Token(string[] args, TextWriter output, TextWriter error)
    {
        var list = args.ToList();
        string? file = null;
        var at = list.IndexOf("--file");
        if (at >= 0 && at + 1 < list.Count)
        {
            file = list[at + 1];
            list.RemoveRange(at, 2);
        }
        file ??= new Broker.Actors.Configuration.SettingsReader(BrokerConfig.Load()).String("admin.tokens-file", "");
        if (string.IsNullOrEmpty(file))
        {
            error.WriteLine("no tokens file: set BROKER_ADMIN_TOKENS_FILE (broker.admin.tokens-file) or pass --file FILE");
            return 2;
        }
        switch (list)
        {
            case ["add", var name, var roleText]:
                if (AdminTokens.ParseRole(roleText) is not { } role)
                {
                    error.WriteLine("the role is viewer or admin");
                    return 2;
                }
                var secret = AdminTokens.Add(file, name, role);
                error.WriteLine($"token {name} ({roleText}) added to {file}; its secret, shown only now:");
                output.WriteLine(secret);
                return 0;
            case ["remove", var name]:
                if (!AdminTokens.Remove(file, name))
                {
                    error.WriteLine($"{file} has no token '{name}'");
                    return 1;
                }
                output.WriteLine($"removed token {name} from {file}");
                return 0;
            case ["list"]:
                foreach (var (tokenName, tokenRole) in File.Exists(file) ? AdminTokens.Load(file).Entries : [])
                {
                    output.WriteLine($"{tokenName} {tokenRole.ToString().ToLowerInvariant()}");
                }
                return 0;
            default:
                error.WriteLine("usage: token add NAME viewer|admin | token remove NAME | token list   [--file FILE]");
                return 2;
        }
    }
}
