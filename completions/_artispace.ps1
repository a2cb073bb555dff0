
using namespace System.Management.Automation
using namespace System.Management.Automation.Language

Register-ArgumentCompleter -Native -CommandName 'artispace' -ScriptBlock {
    param($wordToComplete, $commandAst, $cursorPosition)

    $commandElements = $commandAst.CommandElements
    $command = @(
        'artispace'
        for ($i = 1; $i -lt $commandElements.Count; $i++) {
            $element = $commandElements[$i]
            if ($element -isnot [StringConstantExpressionAst] -or
                $element.StringConstantType -ne [StringConstantType]::BareWord -or
                $element.Value.StartsWith('-') -or
                $element.Value -eq $wordToComplete) {
                break
        }
        $element.Value
    }) -join ';'

    $completions = @(switch ($command) {
        'artispace' {
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('serve', 'serve', [CompletionResultType]::ParameterValue, 'Serve the OCI Distribution / Docker Registry V2 API')
            [CompletionResult]::new('push', 'push', [CompletionResultType]::ParameterValue, 'Push an OCI layout, OCI archive or Docker archive to the local store or a remote registry')
            [CompletionResult]::new('inspect', 'inspect', [CompletionResultType]::ParameterValue, 'Show repositories, a repository''s tags, or one manifest in detail')
            [CompletionResult]::new('gc', 'gc', [CompletionResultType]::ParameterValue, 'Remove what nothing references any more (safe while serve runs)')
            [CompletionResult]::new('verify', 'verify', [CompletionResultType]::ParameterValue, 'Re-hash every blob and check every record; optionally repair')
            [CompletionResult]::new('completions', 'completions', [CompletionResultType]::ParameterValue, 'Print shell completions')
            [CompletionResult]::new('generate-docs', 'generate-docs', [CompletionResultType]::ParameterValue, 'Rewrite the committed completions/ and man/ (for maintainers)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'artispace;serve' {
            [CompletionResult]::new('--addr', '--addr', [CompletionResultType]::ParameterName, 'Address to listen on (port 0 picks a free port, printed at start)')
            [CompletionResult]::new('--root', '--root', [CompletionResultType]::ParameterName, 'Store root: database, blobs and uploads live under it')
            [CompletionResult]::new('--log-level', '--log-level', [CompletionResultType]::ParameterName, 'Log level or tracing filter (error, warn, info, debug, trace)')
            [CompletionResult]::new('--log-format', '--log-format', [CompletionResultType]::ParameterName, 'Log format on stderr')
            [CompletionResult]::new('--upload-expiry', '--upload-expiry', [CompletionResultType]::ParameterName, 'Upload sessions idle for longer than this are removed (e.g. 30m, 24h)')
            [CompletionResult]::new('--delete-enabled', '--delete-enabled', [CompletionResultType]::ParameterName, 'Allow deleting blobs and manifests through the API')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'artispace;push' {
            [CompletionResult]::new('--platform', '--platform', [CompletionResultType]::ParameterName, 'Push only the image for this platform out of an index (`os/arch[/variant]`)')
            [CompletionResult]::new('-j', '-j', [CompletionResultType]::ParameterName, 'Blobs copied at the same time')
            [CompletionResult]::new('--jobs', '--jobs', [CompletionResultType]::ParameterName, 'Blobs copied at the same time')
            [CompletionResult]::new('--chunk-size', '--chunk-size', [CompletionResultType]::ParameterName, 'Size of the chunks of a remote upload (e.g. 16MiB, 512KiB, 1048576)')
            [CompletionResult]::new('--mount-from', '--mount-from', [CompletionResultType]::ParameterName, 'Repositories of the target registry to mount blobs from instead of uploading them (repeatable)')
            [CompletionResult]::new('--username', '--username', [CompletionResultType]::ParameterName, 'User name for a remote registry')
            [CompletionResult]::new('--retries', '--retries', [CompletionResultType]::ParameterName, 'How often a failed request to a remote registry is tried again')
            [CompletionResult]::new('--root', '--root', [CompletionResultType]::ParameterName, 'Store root, as given to `artispace serve`')
            [CompletionResult]::new('--password-stdin', '--password-stdin', [CompletionResultType]::ParameterName, 'Read the password from the first line of stdin (else ARTISPACE_PASSWORD)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print the result as one JSON document on stdout')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'No progress bars or chatter on stderr (errors still print)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'No progress bars or chatter on stderr (errors still print)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'artispace;inspect' {
            [CompletionResult]::new('--root', '--root', [CompletionResultType]::ParameterName, 'Store root, as given to `artispace serve`')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print the result as one JSON document on stdout')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'No progress bars or chatter on stderr (errors still print)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'No progress bars or chatter on stderr (errors still print)')
            [CompletionResult]::new('--all', '--all', [CompletionResultType]::ParameterName, 'With a repository: list untagged manifests too')
            [CompletionResult]::new('--raw', '--raw', [CompletionResultType]::ParameterName, 'With a manifest: print its exact bytes')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'artispace;gc' {
            [CompletionResult]::new('--root', '--root', [CompletionResultType]::ParameterName, 'Store root, as given to `artispace serve`')
            [CompletionResult]::new('--grace', '--grace', [CompletionResultType]::ParameterName, 'Keep unreferenced blobs linked more recently than this (a client pushes layers before their manifest)')
            [CompletionResult]::new('--upload-expiry', '--upload-expiry', [CompletionResultType]::ParameterName, 'Upload sessions idle for longer than this are removed')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print the result as one JSON document on stdout')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'No progress bars or chatter on stderr (errors still print)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'No progress bars or chatter on stderr (errors still print)')
            [CompletionResult]::new('--dry-run', '--dry-run', [CompletionResultType]::ParameterName, 'Report what would be removed; change nothing')
            [CompletionResult]::new('--delete-untagged', '--delete-untagged', [CompletionResultType]::ParameterName, 'Also remove untagged manifests that no index lists and that are not referrers of a kept manifest')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'artispace;verify' {
            [CompletionResult]::new('--root', '--root', [CompletionResultType]::ParameterName, 'Store root, as given to `artispace serve`')
            [CompletionResult]::new('-j', '-j', [CompletionResultType]::ParameterName, 'Threads hashing blobs (default: one per core)')
            [CompletionResult]::new('--jobs', '--jobs', [CompletionResultType]::ParameterName, 'Threads hashing blobs (default: one per core)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print the result as one JSON document on stdout')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'No progress bars or chatter on stderr (errors still print)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'No progress bars or chatter on stderr (errors still print)')
            [CompletionResult]::new('--repair', '--repair', [CompletionResultType]::ParameterName, 'Fix what is safe to fix: remove orphan files and dangling rows, mark corrupt blobs so that the next push replaces them')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'artispace;completions' {
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'artispace;generate-docs' {
            [CompletionResult]::new('--out', '--out', [CompletionResultType]::ParameterName, 'Folder to write `completions/` and `man/` into (the repository root)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'artispace;help' {
            [CompletionResult]::new('serve', 'serve', [CompletionResultType]::ParameterValue, 'Serve the OCI Distribution / Docker Registry V2 API')
            [CompletionResult]::new('push', 'push', [CompletionResultType]::ParameterValue, 'Push an OCI layout, OCI archive or Docker archive to the local store or a remote registry')
            [CompletionResult]::new('inspect', 'inspect', [CompletionResultType]::ParameterValue, 'Show repositories, a repository''s tags, or one manifest in detail')
            [CompletionResult]::new('gc', 'gc', [CompletionResultType]::ParameterValue, 'Remove what nothing references any more (safe while serve runs)')
            [CompletionResult]::new('verify', 'verify', [CompletionResultType]::ParameterValue, 'Re-hash every blob and check every record; optionally repair')
            [CompletionResult]::new('completions', 'completions', [CompletionResultType]::ParameterValue, 'Print shell completions')
            [CompletionResult]::new('generate-docs', 'generate-docs', [CompletionResultType]::ParameterValue, 'Rewrite the committed completions/ and man/ (for maintainers)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'artispace;help;serve' {
            break
        }
        'artispace;help;push' {
            break
        }
        'artispace;help;inspect' {
            break
        }
        'artispace;help;gc' {
            break
        }
        'artispace;help;verify' {
            break
        }
        'artispace;help;completions' {
            break
        }
        'artispace;help;generate-docs' {
            break
        }
        'artispace;help;help' {
            break
        }
    })

    $completions.Where{ $_.CompletionText -like "$wordToComplete*" } |
        Sort-Object -Property ListItemText
}
