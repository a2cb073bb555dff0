
use builtin;
use str;

set edit:completion:arg-completer[artispace] = {|@words|
    fn spaces {|n|
        builtin:repeat $n ' ' | str:join ''
    }
    fn cand {|text desc|
        edit:complex-candidate $text &display=$text' '(spaces (- 14 (wcswidth $text)))$desc
    }
    var command = 'artispace'
    for word $words[1..-1] {
        if (str:has-prefix $word '-') {
            break
        }
        set command = $command';'$word
    }
    var completions = [
        &'artispace'= {
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
            cand serve 'Serve the OCI Distribution / Docker Registry V2 API'
            cand user 'Manage users (the first user switches authentication on)'
            cand grant 'Let a user (or `anonymous`) pull, push, delete or administer repositories matching a pattern'
            cand revoke 'Take back grants given with `grant`'
            cand token 'Manage access tokens for robots and CI'
            cand push 'Push an OCI layout, OCI archive or Docker archive to the local store or a remote registry'
            cand inspect 'Show repositories, a repository''s tags, or one manifest in detail'
            cand gc 'Remove what nothing references any more (safe while serve runs)'
            cand verify 'Re-hash every blob and check every record; optionally repair'
            cand completions 'Print shell completions'
            cand generate-docs 'Rewrite the committed completions/ and man/ (for maintainers)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'artispace;serve'= {
            cand --addr 'Address to listen on (port 0 picks a free port, printed at start)'
            cand --root 'Store root: database, blobs and uploads live under it'
            cand --log-level 'Log level or tracing filter (error, warn, info, debug, trace)'
            cand --log-format 'Log format on stderr'
            cand --upload-expiry 'Upload sessions idle for longer than this are removed (e.g. 30m, 24h)'
            cand --delete-enabled 'Allow deleting blobs and manifests through the API'
            cand --auth 'What a 401 offers clients: Docker''s token protocol (Bearer tokens from /token) or plain Basic. Both are accepted either way'
            cand --token-expiry 'Lifetime of bearer tokens issued by /token'
            cand --tls-cert 'Serve HTTPS with this certificate chain (PEM, leaf first); re-read on SIGHUP'
            cand --tls-key 'The private key of --tls-cert (PEM); re-read on SIGHUP'
            cand --idle-timeout 'Close connections on which nothing moved for this long'
            cand --header-timeout 'Close connections whose request headers take longer than this to arrive'
            cand --max-uploads-per-client 'Uploads (blob or manifest bodies) one client address may run at once; more are refused with 429'
            cand --trusted-proxy 'A reverse proxy in front of the registry, by address or network (`10.0.0.5`, `10.0.0.0/8`; repeat, or comma-separate in the variable). A request from one is taken to come from the client it reports in X-Forwarded-For (or Forwarded), so login rate limits and upload limits apply per client rather than to the proxy. Without it those headers are not believed'
            cand --anonymous-pull 'Let anyone pull any repository, even once users exist'
            cand --tls-self-signed 'Serve HTTPS with a self-signed certificate for the listen address, generated on first start and kept under the root; prints its SHA-256 fingerprint'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'artispace;user'= {
            cand --root 'Store root, as given to `artispace serve`'
            cand --json 'Print the result as one JSON document on stdout'
            cand -q 'No progress bars or chatter on stderr (errors still print)'
            cand --quiet 'No progress bars or chatter on stderr (errors still print)'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
            cand add 'Add a user (the first one switches authentication on)'
            cand list 'List users with their grants (and the grants of anonymous callers)'
            cand remove 'Remove a user, with their grants and access tokens'
            cand passwd 'Change a user''s password'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'artispace;user;add'= {
            cand --root 'Store root, as given to `artispace serve`'
            cand --password-stdin 'Read the password from standard input instead of prompting'
            cand --json 'Print the result as one JSON document on stdout'
            cand -q 'No progress bars or chatter on stderr (errors still print)'
            cand --quiet 'No progress bars or chatter on stderr (errors still print)'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'artispace;user;list'= {
            cand --root 'Store root, as given to `artispace serve`'
            cand --json 'Print the result as one JSON document on stdout'
            cand -q 'No progress bars or chatter on stderr (errors still print)'
            cand --quiet 'No progress bars or chatter on stderr (errors still print)'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'artispace;user;remove'= {
            cand --root 'Store root, as given to `artispace serve`'
            cand --json 'Print the result as one JSON document on stdout'
            cand -q 'No progress bars or chatter on stderr (errors still print)'
            cand --quiet 'No progress bars or chatter on stderr (errors still print)'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'artispace;user;passwd'= {
            cand --root 'Store root, as given to `artispace serve`'
            cand --password-stdin 'Read the password from standard input instead of prompting'
            cand --json 'Print the result as one JSON document on stdout'
            cand -q 'No progress bars or chatter on stderr (errors still print)'
            cand --quiet 'No progress bars or chatter on stderr (errors still print)'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'artispace;user;help'= {
            cand add 'Add a user (the first one switches authentication on)'
            cand list 'List users with their grants (and the grants of anonymous callers)'
            cand remove 'Remove a user, with their grants and access tokens'
            cand passwd 'Change a user''s password'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'artispace;user;help;add'= {
        }
        &'artispace;user;help;list'= {
        }
        &'artispace;user;help;remove'= {
        }
        &'artispace;user;help;passwd'= {
        }
        &'artispace;user;help;help'= {
        }
        &'artispace;grant'= {
            cand --root 'Store root, as given to `artispace serve`'
            cand --json 'Print the result as one JSON document on stdout'
            cand -q 'No progress bars or chatter on stderr (errors still print)'
            cand --quiet 'No progress bars or chatter on stderr (errors still print)'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'artispace;revoke'= {
            cand --root 'Store root, as given to `artispace serve`'
            cand --json 'Print the result as one JSON document on stdout'
            cand -q 'No progress bars or chatter on stderr (errors still print)'
            cand --quiet 'No progress bars or chatter on stderr (errors still print)'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'artispace;token'= {
            cand --root 'Store root, as given to `artispace serve`'
            cand --json 'Print the result as one JSON document on stdout'
            cand -q 'No progress bars or chatter on stderr (errors still print)'
            cand --quiet 'No progress bars or chatter on stderr (errors still print)'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
            cand create 'Create a token; it is printed once and stored only as a hash'
            cand list 'List tokens (never their secrets)'
            cand revoke 'Revoke a token by name'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'artispace;token;create'= {
            cand --user 'The user the token acts for'
            cand --expires 'Lifetime (e.g. 30d, 12h); default: until revoked'
            cand --scope 'Limit the token to PATTERN:ACTIONS (e.g. john/*:pull,push); repeatable. Default: all of the user''s rights'
            cand --root 'Store root, as given to `artispace serve`'
            cand --json 'Print the result as one JSON document on stdout'
            cand -q 'No progress bars or chatter on stderr (errors still print)'
            cand --quiet 'No progress bars or chatter on stderr (errors still print)'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'artispace;token;list'= {
            cand --user 'Only this user''s tokens'
            cand --root 'Store root, as given to `artispace serve`'
            cand --json 'Print the result as one JSON document on stdout'
            cand -q 'No progress bars or chatter on stderr (errors still print)'
            cand --quiet 'No progress bars or chatter on stderr (errors still print)'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'artispace;token;revoke'= {
            cand --user 'Whose token (needed when several users have one of that name)'
            cand --root 'Store root, as given to `artispace serve`'
            cand --json 'Print the result as one JSON document on stdout'
            cand -q 'No progress bars or chatter on stderr (errors still print)'
            cand --quiet 'No progress bars or chatter on stderr (errors still print)'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'artispace;token;help'= {
            cand create 'Create a token; it is printed once and stored only as a hash'
            cand list 'List tokens (never their secrets)'
            cand revoke 'Revoke a token by name'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'artispace;token;help;create'= {
        }
        &'artispace;token;help;list'= {
        }
        &'artispace;token;help;revoke'= {
        }
        &'artispace;token;help;help'= {
        }
        &'artispace;push'= {
            cand --platform 'Push only the image for this platform out of an index (`os/arch[/variant]`)'
            cand -j 'Blobs copied at the same time'
            cand --jobs 'Blobs copied at the same time'
            cand --chunk-size 'Size of the chunks of a remote upload (e.g. 16MiB, 512KiB, 1048576)'
            cand --mount-from 'Repositories of the target registry to mount blobs from instead of uploading them (repeatable)'
            cand --username 'User name for a remote registry'
            cand --retries 'How often a failed request to a remote registry is tried again'
            cand --root 'Store root, as given to `artispace serve`'
            cand --password-stdin 'Read the password from the first line of stdin (else ARTISPACE_PASSWORD)'
            cand --json 'Print the result as one JSON document on stdout'
            cand -q 'No progress bars or chatter on stderr (errors still print)'
            cand --quiet 'No progress bars or chatter on stderr (errors still print)'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'artispace;inspect'= {
            cand --root 'Store root, as given to `artispace serve`'
            cand --json 'Print the result as one JSON document on stdout'
            cand -q 'No progress bars or chatter on stderr (errors still print)'
            cand --quiet 'No progress bars or chatter on stderr (errors still print)'
            cand --all 'With a repository: list untagged manifests too'
            cand --raw 'With a manifest: print its exact bytes'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'artispace;gc'= {
            cand --root 'Store root, as given to `artispace serve`'
            cand --grace 'Keep unreferenced blobs linked more recently than this (a client pushes layers before their manifest)'
            cand --upload-expiry 'Upload sessions idle for longer than this are removed'
            cand --json 'Print the result as one JSON document on stdout'
            cand -q 'No progress bars or chatter on stderr (errors still print)'
            cand --quiet 'No progress bars or chatter on stderr (errors still print)'
            cand --dry-run 'Report what would be removed; change nothing'
            cand --delete-untagged 'Also remove untagged manifests that no index lists and that are not referrers of a kept manifest'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'artispace;verify'= {
            cand --root 'Store root, as given to `artispace serve`'
            cand -j 'Threads hashing blobs (default: one per core)'
            cand --jobs 'Threads hashing blobs (default: one per core)'
            cand --json 'Print the result as one JSON document on stdout'
            cand -q 'No progress bars or chatter on stderr (errors still print)'
            cand --quiet 'No progress bars or chatter on stderr (errors still print)'
            cand --repair 'Fix what is safe to fix: remove orphan files and dangling rows, mark corrupt blobs so that the next push replaces them'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'artispace;completions'= {
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'artispace;generate-docs'= {
            cand --out 'Folder to write `completions/` and `man/` into (the repository root)'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'artispace;help'= {
            cand serve 'Serve the OCI Distribution / Docker Registry V2 API'
            cand user 'Manage users (the first user switches authentication on)'
            cand grant 'Let a user (or `anonymous`) pull, push, delete or administer repositories matching a pattern'
            cand revoke 'Take back grants given with `grant`'
            cand token 'Manage access tokens for robots and CI'
            cand push 'Push an OCI layout, OCI archive or Docker archive to the local store or a remote registry'
            cand inspect 'Show repositories, a repository''s tags, or one manifest in detail'
            cand gc 'Remove what nothing references any more (safe while serve runs)'
            cand verify 'Re-hash every blob and check every record; optionally repair'
            cand completions 'Print shell completions'
            cand generate-docs 'Rewrite the committed completions/ and man/ (for maintainers)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'artispace;help;serve'= {
        }
        &'artispace;help;user'= {
            cand add 'Add a user (the first one switches authentication on)'
            cand list 'List users with their grants (and the grants of anonymous callers)'
            cand remove 'Remove a user, with their grants and access tokens'
            cand passwd 'Change a user''s password'
        }
        &'artispace;help;user;add'= {
        }
        &'artispace;help;user;list'= {
        }
        &'artispace;help;user;remove'= {
        }
        &'artispace;help;user;passwd'= {
        }
        &'artispace;help;grant'= {
        }
        &'artispace;help;revoke'= {
        }
        &'artispace;help;token'= {
            cand create 'Create a token; it is printed once and stored only as a hash'
            cand list 'List tokens (never their secrets)'
            cand revoke 'Revoke a token by name'
        }
        &'artispace;help;token;create'= {
        }
        &'artispace;help;token;list'= {
        }
        &'artispace;help;token;revoke'= {
        }
        &'artispace;help;push'= {
        }
        &'artispace;help;inspect'= {
        }
        &'artispace;help;gc'= {
        }
        &'artispace;help;verify'= {
        }
        &'artispace;help;completions'= {
        }
        &'artispace;help;generate-docs'= {
        }
        &'artispace;help;help'= {
        }
    ]
    $completions[$command]
}
