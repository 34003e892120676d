using System.Text;

namespace Broker.AdminHttp.Security;

/// <summary>Secrets files (passwords, tokens): written whole beside the old file, readable by the owner only, then renamed over it.</summary>
public static class PrivateFile
{
    public static void Write(string path, IEnumerable<string> lines)
    {
        var full = Path.GetFullPath(path);
        var temp = Path.Combine(Path.GetDirectoryName(full)!, "." + Path.GetFileName(full) + ".tmp");
        File.Delete(temp);
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }
        using (var stream = new FileStream(temp, options))
        {
            stream.Write(Encoding.UTF8.GetBytes(string.Concat(lines.Select(l => l + "\n"))));
            stream.Flush(flushToDisk: true);
        }
        File.Move(temp, full, overwrite: true);
    }
}

/// <summary>The lines of an operator's rules or secrets file that say something: trimmed, without blank and # comment lines.</summary>
public static class ContentLines
{
    /// <summary>Each such line with its 1-based number, for errors that name it.</summary>
    public static IEnumerable<(int Number, string Line)> Of(string text)
    {
        var number = 0;
        foreach (var raw in text.Split('\n'))
        {
            number++;
            var line = raw.Trim();
            if (line.Length > 0 && line[0] != '#')
            {
                yield return (number, line);
            }
        }
    }
}
