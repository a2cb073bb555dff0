# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_artispace_global_optspecs
    string join \n h/help V/version
end

function __fish_artispace_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_artispace_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_artispace_using_subcommand
    set -l cmd (__fish_artispace_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c artispace -n "__fish_artispace_needs_command" -s h -l help -d 'Print help'
complete -c artispace -n "__fish_artispace_needs_command" -s V -l version -d 'Print version'
complete -c artispace -n "__fish_artispace_needs_command" -f -a "serve" -d 'Serve the OCI Distribution / Docker Registry V2 API'
complete -c artispace -n "__fish_artispace_needs_command" -f -a "user" -d 'Manage users (the first user switches authentication on)'
complete -c artispace -n "__fish_artispace_needs_command" -f -a "grant" -d 'Let a user (or `anonymous`) pull, push, delete or administer repositories matching a pattern'
complete -c artispace -n "__fish_artispace_needs_command" -f -a "revoke" -d 'Take back grants given with `grant`'
complete -c artispace -n "__fish_artispace_needs_command" -f -a "token" -d 'Manage access tokens for robots and CI'
complete -c artispace -n "__fish_artispace_needs_command" -f -a "push" -d 'Push an OCI layout, OCI archive or Docker archive to the local store or a remote registry'
complete -c artispace -n "__fish_artispace_needs_command" -f -a "inspect" -d 'Show repositories, a repository\'s tags, or one manifest in detail'
complete -c artispace -n "__fish_artispace_needs_command" -f -a "gc" -d 'Remove what nothing references any more (safe while serve runs)'
complete -c artispace -n "__fish_artispace_needs_command" -f -a "verify" -d 'Re-hash every blob and check every record; optionally repair'
complete -c artispace -n "__fish_artispace_needs_command" -f -a "completions" -d 'Print shell completions'
complete -c artispace -n "__fish_artispace_needs_command" -f -a "generate-docs" -d 'Rewrite the committed completions/ and man/ (for maintainers)'
complete -c artispace -n "__fish_artispace_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c artispace -n "__fish_artispace_using_subcommand serve" -l addr -d 'Address to listen on (port 0 picks a free port, printed at start)' -r
complete -c artispace -n "__fish_artispace_using_subcommand serve" -l root -d 'Store root: database, blobs and uploads live under it' -r -F
complete -c artispace -n "__fish_artispace_using_subcommand serve" -l log-level -d 'Log level or tracing filter (error, warn, info, debug, trace)' -r
complete -c artispace -n "__fish_artispace_using_subcommand serve" -l log-format -d 'Log format on stderr' -r -f -a "text\t''
json\t''"
complete -c artispace -n "__fish_artispace_using_subcommand serve" -l upload-expiry -d 'Upload sessions idle for longer than this are removed (e.g. 30m, 24h)' -r
complete -c artispace -n "__fish_artispace_using_subcommand serve" -l delete-enabled -d 'Allow deleting blobs and manifests through the API' -r -f -a "true\t''
false\t''"
complete -c artispace -n "__fish_artispace_using_subcommand serve" -l auth -d 'What a 401 offers clients: Docker\'s token protocol (Bearer tokens from /token) or plain Basic. Both are accepted either way' -r -f -a "basic\t'`WWW-Authenticate: Basic realm="artispace"`'
token\t'Docker\'s token protocol: `Bearer realm="<base>/token",…`'"
complete -c artispace -n "__fish_artispace_using_subcommand serve" -l token-expiry -d 'Lifetime of bearer tokens issued by /token' -r
complete -c artispace -n "__fish_artispace_using_subcommand serve" -l tls-cert -d 'Serve HTTPS with this certificate chain (PEM, leaf first); re-read on SIGHUP' -r -F
complete -c artispace -n "__fish_artispace_using_subcommand serve" -l tls-key -d 'The private key of --tls-cert (PEM); re-read on SIGHUP' -r -F
complete -c artispace -n "__fish_artispace_using_subcommand serve" -l idle-timeout -d 'Close connections on which nothing moved for this long' -r
complete -c artispace -n "__fish_artispace_using_subcommand serve" -l header-timeout -d 'Close connections whose request headers take longer than this to arrive' -r
complete -c artispace -n "__fish_artispace_using_subcommand serve" -l max-uploads-per-client -d 'Uploads (blob or manifest bodies) one client address may run at once; more are refused with 429' -r
complete -c artispace -n "__fish_artispace_using_subcommand serve" -l trusted-proxy -d 'A reverse proxy in front of the registry, by address or network (`10.0.0.5`, `10.0.0.0/8`; repeat, or comma-separate in the variable). A request from one is taken to come from the client it reports in X-Forwarded-For (or Forwarded), so login rate limits and upload limits apply per client rather than to the proxy. Without it those headers are not believed' -r
complete -c artispace -n "__fish_artispace_using_subcommand serve" -l anonymous-pull -d 'Let anyone pull any repository, even once users exist'
complete -c artispace -n "__fish_artispace_using_subcommand serve" -l tls-self-signed -d 'Serve HTTPS with a self-signed certificate for the listen address, generated on first start and kept under the root; prints its SHA-256 fingerprint'
complete -c artispace -n "__fish_artispace_using_subcommand serve" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c artispace -n "__fish_artispace_using_subcommand serve" -s V -l version -d 'Print version'
complete -c artispace -n "__fish_artispace_using_subcommand user; and not __fish_seen_subcommand_from add list remove passwd help" -l root -d 'Store root, as given to `artispace serve`' -r -F
complete -c artispace -n "__fish_artispace_using_subcommand user; and not __fish_seen_subcommand_from add list remove passwd help" -l json -d 'Print the result as one JSON document on stdout'
complete -c artispace -n "__fish_artispace_using_subcommand user; and not __fish_seen_subcommand_from add list remove passwd help" -s q -l quiet -d 'No progress bars or chatter on stderr (errors still print)'
complete -c artispace -n "__fish_artispace_using_subcommand user; and not __fish_seen_subcommand_from add list remove passwd help" -s h -l help -d 'Print help'
complete -c artispace -n "__fish_artispace_using_subcommand user; and not __fish_seen_subcommand_from add list remove passwd help" -s V -l version -d 'Print version'
complete -c artispace -n "__fish_artispace_using_subcommand user; and not __fish_seen_subcommand_from add list remove passwd help" -f -a "add" -d 'Add a user (the first one switches authentication on)'
complete -c artispace -n "__fish_artispace_using_subcommand user; and not __fish_seen_subcommand_from add list remove passwd help" -f -a "list" -d 'List users with their grants (and the grants of anonymous callers)'
complete -c artispace -n "__fish_artispace_using_subcommand user; and not __fish_seen_subcommand_from add list remove passwd help" -f -a "remove" -d 'Remove a user, with their grants and access tokens'
complete -c artispace -n "__fish_artispace_using_subcommand user; and not __fish_seen_subcommand_from add list remove passwd help" -f -a "passwd" -d 'Change a user\'s password'
complete -c artispace -n "__fish_artispace_using_subcommand user; and not __fish_seen_subcommand_from add list remove passwd help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c artispace -n "__fish_artispace_using_subcommand user; and __fish_seen_subcommand_from add" -l root -d 'Store root, as given to `artispace serve`' -r -F
complete -c artispace -n "__fish_artispace_using_subcommand user; and __fish_seen_subcommand_from add" -l password-stdin -d 'Read the password from standard input instead of prompting'
complete -c artispace -n "__fish_artispace_using_subcommand user; and __fish_seen_subcommand_from add" -l json -d 'Print the result as one JSON document on stdout'
complete -c artispace -n "__fish_artispace_using_subcommand user; and __fish_seen_subcommand_from add" -s q -l quiet -d 'No progress bars or chatter on stderr (errors still print)'
complete -c artispace -n "__fish_artispace_using_subcommand user; and __fish_seen_subcommand_from add" -s h -l help -d 'Print help'
complete -c artispace -n "__fish_artispace_using_subcommand user; and __fish_seen_subcommand_from add" -s V -l version -d 'Print version'
complete -c artispace -n "__fish_artispace_using_subcommand user; and __fish_seen_subcommand_from list" -l root -d 'Store root, as given to `artispace serve`' -r -F
complete -c artispace -n "__fish_artispace_using_subcommand user; and __fish_seen_subcommand_from list" -l json -d 'Print the result as one JSON document on stdout'
complete -c artispace -n "__fish_artispace_using_subcommand user; and __fish_seen_subcommand_from list" -s q -l quiet -d 'No progress bars or chatter on stderr (errors still print)'
complete -c artispace -n "__fish_artispace_using_subcommand user; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c artispace -n "__fish_artispace_using_subcommand user; and __fish_seen_subcommand_from list" -s V -l version -d 'Print version'
complete -c artispace -n "__fish_artispace_using_subcommand user; and __fish_seen_subcommand_from remove" -l root -d 'Store root, as given to `artispace serve`' -r -F
complete -c artispace -n "__fish_artispace_using_subcommand user; and __fish_seen_subcommand_from remove" -l json -d 'Print the result as one JSON document on stdout'
complete -c artispace -n "__fish_artispace_using_subcommand user; and __fish_seen_subcommand_from remove" -s q -l quiet -d 'No progress bars or chatter on stderr (errors still print)'
complete -c artispace -n "__fish_artispace_using_subcommand user; and __fish_seen_subcommand_from remove" -s h -l help -d 'Print help'
complete -c artispace -n "__fish_artispace_using_subcommand user; and __fish_seen_subcommand_from remove" -s V -l version -d 'Print version'
complete -c artispace -n "__fish_artispace_using_subcommand user; and __fish_seen_subcommand_from passwd" -l root -d 'Store root, as given to `artispace serve`' -r -F
complete -c artispace -n "__fish_artispace_using_subcommand user; and __fish_seen_subcommand_from passwd" -l password-stdin -d 'Read the password from standard input instead of prompting'
complete -c artispace -n "__fish_artispace_using_subcommand user; and __fish_seen_subcommand_from passwd" -l json -d 'Print the result as one JSON document on stdout'
complete -c artispace -n "__fish_artispace_using_subcommand user; and __fish_seen_subcommand_from passwd" -s q -l quiet -d 'No progress bars or chatter on stderr (errors still print)'
complete -c artispace -n "__fish_artispace_using_subcommand user; and __fish_seen_subcommand_from passwd" -s h -l help -d 'Print help'
complete -c artispace -n "__fish_artispace_using_subcommand user; and __fish_seen_subcommand_from passwd" -s V -l version -d 'Print version'
complete -c artispace -n "__fish_artispace_using_subcommand user; and __fish_seen_subcommand_from help" -f -a "add" -d 'Add a user (the first one switches authentication on)'
complete -c artispace -n "__fish_artispace_using_subcommand user; and __fish_seen_subcommand_from help" -f -a "list" -d 'List users with their grants (and the grants of anonymous callers)'
complete -c artispace -n "__fish_artispace_using_subcommand user; and __fish_seen_subcommand_from help" -f -a "remove" -d 'Remove a user, with their grants and access tokens'
complete -c artispace -n "__fish_artispace_using_subcommand user; and __fish_seen_subcommand_from help" -f -a "passwd" -d 'Change a user\'s password'
complete -c artispace -n "__fish_artispace_using_subcommand user; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c artispace -n "__fish_artispace_using_subcommand grant" -l root -d 'Store root, as given to `artispace serve`' -r -F
complete -c artispace -n "__fish_artispace_using_subcommand grant" -l json -d 'Print the result as one JSON document on stdout'
complete -c artispace -n "__fish_artispace_using_subcommand grant" -s q -l quiet -d 'No progress bars or chatter on stderr (errors still print)'
complete -c artispace -n "__fish_artispace_using_subcommand grant" -s h -l help -d 'Print help'
complete -c artispace -n "__fish_artispace_using_subcommand grant" -s V -l version -d 'Print version'
complete -c artispace -n "__fish_artispace_using_subcommand revoke" -l root -d 'Store root, as given to `artispace serve`' -r -F
complete -c artispace -n "__fish_artispace_using_subcommand revoke" -l json -d 'Print the result as one JSON document on stdout'
complete -c artispace -n "__fish_artispace_using_subcommand revoke" -s q -l quiet -d 'No progress bars or chatter on stderr (errors still print)'
complete -c artispace -n "__fish_artispace_using_subcommand revoke" -s h -l help -d 'Print help'
complete -c artispace -n "__fish_artispace_using_subcommand revoke" -s V -l version -d 'Print version'
complete -c artispace -n "__fish_artispace_using_subcommand token; and not __fish_seen_subcommand_from create list revoke help" -l root -d 'Store root, as given to `artispace serve`' -r -F
complete -c artispace -n "__fish_artispace_using_subcommand token; and not __fish_seen_subcommand_from create list revoke help" -l json -d 'Print the result as one JSON document on stdout'
complete -c artispace -n "__fish_artispace_using_subcommand token; and not __fish_seen_subcommand_from create list revoke help" -s q -l quiet -d 'No progress bars or chatter on stderr (errors still print)'
complete -c artispace -n "__fish_artispace_using_subcommand token; and not __fish_seen_subcommand_from create list revoke help" -s h -l help -d 'Print help'
complete -c artispace -n "__fish_artispace_using_subcommand token; and not __fish_seen_subcommand_from create list revoke help" -s V -l version -d 'Print version'
complete -c artispace -n "__fish_artispace_using_subcommand token; and not __fish_seen_subcommand_from create list revoke help" -f -a "create" -d 'Create a token; it is printed once and stored only as a hash'
complete -c artispace -n "__fish_artispace_using_subcommand token; and not __fish_seen_subcommand_from create list revoke help" -f -a "list" -d 'List tokens (never their secrets)'
complete -c artispace -n "__fish_artispace_using_subcommand token; and not __fish_seen_subcommand_from create list revoke help" -f -a "revoke" -d 'Revoke a token by name'
complete -c artispace -n "__fish_artispace_using_subcommand token; and not __fish_seen_subcommand_from create list revoke help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c artispace -n "__fish_artispace_using_subcommand token; and __fish_seen_subcommand_from create" -l user -d 'The user the token acts for' -r
complete -c artispace -n "__fish_artispace_using_subcommand token; and __fish_seen_subcommand_from create" -l expires -d 'Lifetime (e.g. 30d, 12h); default: until revoked' -r
complete -c artispace -n "__fish_artispace_using_subcommand token; and __fish_seen_subcommand_from create" -l scope -d 'Limit the token to PATTERN:ACTIONS (e.g. john/*:pull,push); repeatable. Default: all of the user\'s rights' -r
complete -c artispace -n "__fish_artispace_using_subcommand token; and __fish_seen_subcommand_from create" -l root -d 'Store root, as given to `artispace serve`' -r -F
complete -c artispace -n "__fish_artispace_using_subcommand token; and __fish_seen_subcommand_from create" -l json -d 'Print the result as one JSON document on stdout'
complete -c artispace -n "__fish_artispace_using_subcommand token; and __fish_seen_subcommand_from create" -s q -l quiet -d 'No progress bars or chatter on stderr (errors still print)'
complete -c artispace -n "__fish_artispace_using_subcommand token; and __fish_seen_subcommand_from create" -s h -l help -d 'Print help'
complete -c artispace -n "__fish_artispace_using_subcommand token; and __fish_seen_subcommand_from create" -s V -l version -d 'Print version'
complete -c artispace -n "__fish_artispace_using_subcommand token; and __fish_seen_subcommand_from list" -l user -d 'Only this user\'s tokens' -r
complete -c artispace -n "__fish_artispace_using_subcommand token; and __fish_seen_subcommand_from list" -l root -d 'Store root, as given to `artispace serve`' -r -F
complete -c artispace -n "__fish_artispace_using_subcommand token; and __fish_seen_subcommand_from list" -l json -d 'Print the result as one JSON document on stdout'
complete -c artispace -n "__fish_artispace_using_subcommand token; and __fish_seen_subcommand_from list" -s q -l quiet -d 'No progress bars or chatter on stderr (errors still print)'
complete -c artispace -n "__fish_artispace_using_subcommand token; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c artispace -n "__fish_artispace_using_subcommand token; and __fish_seen_subcommand_from list" -s V -l version -d 'Print version'
complete -c artispace -n "__fish_artispace_using_subcommand token; and __fish_seen_subcommand_from revoke" -l user -d 'Whose token (needed when several users have one of that name)' -r
complete -c artispace -n "__fish_artispace_using_subcommand token; and __fish_seen_subcommand_from revoke" -l root -d 'Store root, as given to `artispace serve`' -r -F
complete -c artispace -n "__fish_artispace_using_subcommand token; and __fish_seen_subcommand_from revoke" -l json -d 'Print the result as one JSON document on stdout'
complete -c artispace -n "__fish_artispace_using_subcommand token; and __fish_seen_subcommand_from revoke" -s q -l quiet -d 'No progress bars or chatter on stderr (errors still print)'
complete -c artispace -n "__fish_artispace_using_subcommand token; and __fish_seen_subcommand_from revoke" -s h -l help -d 'Print help'
complete -c artispace -n "__fish_artispace_using_subcommand token; and __fish_seen_subcommand_from revoke" -s V -l version -d 'Print version'
complete -c artispace -n "__fish_artispace_using_subcommand token; and __fish_seen_subcommand_from help" -f -a "create" -d 'Create a token; it is printed once and stored only as a hash'
complete -c artispace -n "__fish_artispace_using_subcommand token; and __fish_seen_subcommand_from help" -f -a "list" -d 'List tokens (never their secrets)'
complete -c artispace -n "__fish_artispace_using_subcommand token; and __fish_seen_subcommand_from help" -f -a "revoke" -d 'Revoke a token by name'
complete -c artispace -n "__fish_artispace_using_subcommand token; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c artispace -n "__fish_artispace_using_subcommand push" -l platform -d 'Push only the image for this platform out of an index (`os/arch[/variant]`)' -r
complete -c artispace -n "__fish_artispace_using_subcommand push" -s j -l jobs -d 'Blobs copied at the same time' -r
complete -c artispace -n "__fish_artispace_using_subcommand push" -l chunk-size -d 'Size of the chunks of a remote upload (e.g. 16MiB, 512KiB, 1048576)' -r
complete -c artispace -n "__fish_artispace_using_subcommand push" -l mount-from -d 'Repositories of the target registry to mount blobs from instead of uploading them (repeatable)' -r
complete -c artispace -n "__fish_artispace_using_subcommand push" -l username -d 'User name for a remote registry' -r
complete -c artispace -n "__fish_artispace_using_subcommand push" -l retries -d 'How often a failed request to a remote registry is tried again' -r
complete -c artispace -n "__fish_artispace_using_subcommand push" -l root -d 'Store root, as given to `artispace serve`' -r -F
complete -c artispace -n "__fish_artispace_using_subcommand push" -l password-stdin -d 'Read the password from the first line of stdin (else ARTISPACE_PASSWORD)'
complete -c artispace -n "__fish_artispace_using_subcommand push" -l json -d 'Print the result as one JSON document on stdout'
complete -c artispace -n "__fish_artispace_using_subcommand push" -s q -l quiet -d 'No progress bars or chatter on stderr (errors still print)'
complete -c artispace -n "__fish_artispace_using_subcommand push" -s h -l help -d 'Print help'
complete -c artispace -n "__fish_artispace_using_subcommand push" -s V -l version -d 'Print version'
complete -c artispace -n "__fish_artispace_using_subcommand inspect" -l root -d 'Store root, as given to `artispace serve`' -r -F
complete -c artispace -n "__fish_artispace_using_subcommand inspect" -l json -d 'Print the result as one JSON document on stdout'
complete -c artispace -n "__fish_artispace_using_subcommand inspect" -s q -l quiet -d 'No progress bars or chatter on stderr (errors still print)'
complete -c artispace -n "__fish_artispace_using_subcommand inspect" -l all -d 'With a repository: list untagged manifests too'
complete -c artispace -n "__fish_artispace_using_subcommand inspect" -l raw -d 'With a manifest: print its exact bytes'
complete -c artispace -n "__fish_artispace_using_subcommand inspect" -s h -l help -d 'Print help'
complete -c artispace -n "__fish_artispace_using_subcommand inspect" -s V -l version -d 'Print version'
complete -c artispace -n "__fish_artispace_using_subcommand gc" -l root -d 'Store root, as given to `artispace serve`' -r -F
complete -c artispace -n "__fish_artispace_using_subcommand gc" -l grace -d 'Keep unreferenced blobs linked more recently than this (a client pushes layers before their manifest)' -r
complete -c artispace -n "__fish_artispace_using_subcommand gc" -l upload-expiry -d 'Upload sessions idle for longer than this are removed' -r
complete -c artispace -n "__fish_artispace_using_subcommand gc" -l json -d 'Print the result as one JSON document on stdout'
complete -c artispace -n "__fish_artispace_using_subcommand gc" -s q -l quiet -d 'No progress bars or chatter on stderr (errors still print)'
complete -c artispace -n "__fish_artispace_using_subcommand gc" -l dry-run -d 'Report what would be removed; change nothing'
complete -c artispace -n "__fish_artispace_using_subcommand gc" -l delete-untagged -d 'Also remove untagged manifests that no index lists and that are not referrers of a kept manifest'
complete -c artispace -n "__fish_artispace_using_subcommand gc" -s h -l help -d 'Print help'
complete -c artispace -n "__fish_artispace_using_subcommand gc" -s V -l version -d 'Print version'
complete -c artispace -n "__fish_artispace_using_subcommand verify" -l root -d 'Store root, as given to `artispace serve`' -r -F
complete -c artispace -n "__fish_artispace_using_subcommand verify" -s j -l jobs -d 'Threads hashing blobs (default: one per core)' -r
complete -c artispace -n "__fish_artispace_using_subcommand verify" -l json -d 'Print the result as one JSON document on stdout'
complete -c artispace -n "__fish_artispace_using_subcommand verify" -s q -l quiet -d 'No progress bars or chatter on stderr (errors still print)'
complete -c artispace -n "__fish_artispace_using_subcommand verify" -l repair -d 'Fix what is safe to fix: remove orphan files and dangling rows, mark corrupt blobs so that the next push replaces them'
complete -c artispace -n "__fish_artispace_using_subcommand verify" -s h -l help -d 'Print help'
complete -c artispace -n "__fish_artispace_using_subcommand verify" -s V -l version -d 'Print version'
complete -c artispace -n "__fish_artispace_using_subcommand completions" -s h -l help -d 'Print help'
complete -c artispace -n "__fish_artispace_using_subcommand completions" -s V -l version -d 'Print version'
complete -c artispace -n "__fish_artispace_using_subcommand generate-docs" -l out -d 'Folder to write `completions/` and `man/` into (the repository root)' -r -F
complete -c artispace -n "__fish_artispace_using_subcommand generate-docs" -s h -l help -d 'Print help'
complete -c artispace -n "__fish_artispace_using_subcommand generate-docs" -s V -l version -d 'Print version'
complete -c artispace -n "__fish_artispace_using_subcommand help; and not __fish_seen_subcommand_from serve user grant revoke token push inspect gc verify completions generate-docs help" -f -a "serve" -d 'Serve the OCI Distribution / Docker Registry V2 API'
complete -c artispace -n "__fish_artispace_using_subcommand help; and not __fish_seen_subcommand_from serve user grant revoke token push inspect gc verify completions generate-docs help" -f -a "user" -d 'Manage users (the first user switches authentication on)'
complete -c artispace -n "__fish_artispace_using_subcommand help; and not __fish_seen_subcommand_from serve user grant revoke token push inspect gc verify completions generate-docs help" -f -a "grant" -d 'Let a user (or `anonymous`) pull, push, delete or administer repositories matching a pattern'
complete -c artispace -n "__fish_artispace_using_subcommand help; and not __fish_seen_subcommand_from serve user grant revoke token push inspect gc verify completions generate-docs help" -f -a "revoke" -d 'Take back grants given with `grant`'
complete -c artispace -n "__fish_artispace_using_subcommand help; and not __fish_seen_subcommand_from serve user grant revoke token push inspect gc verify completions generate-docs help" -f -a "token" -d 'Manage access tokens for robots and CI'
complete -c artispace -n "__fish_artispace_using_subcommand help; and not __fish_seen_subcommand_from serve user grant revoke token push inspect gc verify completions generate-docs help" -f -a "push" -d 'Push an OCI layout, OCI archive or Docker archive to the local store or a remote registry'
complete -c artispace -n "__fish_artispace_using_subcommand help; and not __fish_seen_subcommand_from serve user grant revoke token push inspect gc verify completions generate-docs help" -f -a "inspect" -d 'Show repositories, a repository\'s tags, or one manifest in detail'
complete -c artispace -n "__fish_artispace_using_subcommand help; and not __fish_seen_subcommand_from serve user grant revoke token push inspect gc verify completions generate-docs help" -f -a "gc" -d 'Remove what nothing references any more (safe while serve runs)'
complete -c artispace -n "__fish_artispace_using_subcommand help; and not __fish_seen_subcommand_from serve user grant revoke token push inspect gc verify completions generate-docs help" -f -a "verify" -d 'Re-hash every blob and check every record; optionally repair'
complete -c artispace -n "__fish_artispace_using_subcommand help; and not __fish_seen_subcommand_from serve user grant revoke token push inspect gc verify completions generate-docs help" -f -a "completions" -d 'Print shell completions'
complete -c artispace -n "__fish_artispace_using_subcommand help; and not __fish_seen_subcommand_from serve user grant revoke token push inspect gc verify completions generate-docs help" -f -a "generate-docs" -d 'Rewrite the committed completions/ and man/ (for maintainers)'
complete -c artispace -n "__fish_artispace_using_subcommand help; and not __fish_seen_subcommand_from serve user grant revoke token push inspect gc verify completions generate-docs help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c artispace -n "__fish_artispace_using_subcommand help; and __fish_seen_subcommand_from user" -f -a "add" -d 'Add a user (the first one switches authentication on)'
complete -c artispace -n "__fish_artispace_using_subcommand help; and __fish_seen_subcommand_from user" -f -a "list" -d 'List users with their grants (and the grants of anonymous callers)'
complete -c artispace -n "__fish_artispace_using_subcommand help; and __fish_seen_subcommand_from user" -f -a "remove" -d 'Remove a user, with their grants and access tokens'
complete -c artispace -n "__fish_artispace_using_subcommand help; and __fish_seen_subcommand_from user" -f -a "passwd" -d 'Change a user\'s password'
complete -c artispace -n "__fish_artispace_using_subcommand help; and __fish_seen_subcommand_from token" -f -a "create" -d 'Create a token; it is printed once and stored only as a hash'
complete -c artispace -n "__fish_artispace_using_subcommand help; and __fish_seen_subcommand_from token" -f -a "list" -d 'List tokens (never their secrets)'
complete -c artispace -n "__fish_artispace_using_subcommand help; and __fish_seen_subcommand_from token" -f -a "revoke" -d 'Revoke a token by name'
