# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_lfleet_global_optspecs
    string join \n socket= server= cert= key= ca= json utc h/help V/version
end

function __fish_lfleet_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_lfleet_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_lfleet_using_subcommand
    set -l cmd (__fish_lfleet_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c lfleet -n "__fish_lfleet_needs_command" -l socket -d 'The coordinator\'s admin socket (root only)' -r -F
complete -c lfleet -n "__fish_lfleet_needs_command" -l server -d 'Use the coordinator\'s TLS port instead: https://HOST:PORT' -r
complete -c lfleet -n "__fish_lfleet_needs_command" -l cert -d 'With --server: the operator certificate (from `lfleet-coordinator admin-cert`)' -r -F
complete -c lfleet -n "__fish_lfleet_needs_command" -l key -d 'With --server: the operator certificate\'s key' -r -F
complete -c lfleet -n "__fish_lfleet_needs_command" -l ca -d 'With --server: the coordinator\'s CA certificate' -r -F
complete -c lfleet -n "__fish_lfleet_needs_command" -l json -d 'JSON instead of tables: raw numbers (bytes per second, Unix milliseconds)'
complete -c lfleet -n "__fish_lfleet_needs_command" -l utc -d 'Show times in UTC instead of the local zone'
complete -c lfleet -n "__fish_lfleet_needs_command" -s h -l help -d 'Print help'
complete -c lfleet -n "__fish_lfleet_needs_command" -s V -l version -d 'Print version'
complete -c lfleet -n "__fish_lfleet_needs_command" -f -a "nodes" -d 'Every node: health, generation, mounts, last report, problems'
complete -c lfleet -n "__fish_lfleet_needs_command" -f -a "node" -d 'One node in detail (`node NAME`); a command to its agent (`node NAME reconcile`, `node NAME remount MOUNT`, `node NAME probe`: waits for the agent\'s result); or release a node\'s name (`node remove NAME`: its certificate is refused from then on) or only its key (`node rekey NAME`: a reimaged VM may enroll again)'
complete -c lfleet -n "__fish_lfleet_needs_command" -f -a "token" -d 'The join token'
complete -c lfleet -n "__fish_lfleet_needs_command" -f -a "certs" -d 'Issued certificates: every node\'s key binding and every operator certificate, with expiry and state'
complete -c lfleet -n "__fish_lfleet_needs_command" -f -a "admin-cert" -d 'Operator certificates'
complete -c lfleet -n "__fish_lfleet_needs_command" -f -a "fs" -d 'Filesystems: clients mounted vs expected, throughput, import states'
complete -c lfleet -n "__fish_lfleet_needs_command" -f -a "config" -d 'The desired configuration'
complete -c lfleet -n "__fish_lfleet_needs_command" -f -a "drains" -d 'lfleet\'s drain ledger beside Slurm\'s view of drained nodes'
complete -c lfleet -n "__fish_lfleet_needs_command" -f -a "undrain" -d 'Lift a drain lfleet made (recorded with the operator\'s name)'
complete -c lfleet -n "__fish_lfleet_needs_command" -f -a "incidents" -d 'Filesystem incidents (a check failing on a large share of a filesystem\'s nodes)'
complete -c lfleet -n "__fish_lfleet_needs_command" -f -a "policy" -d 'The drain policy in force'
complete -c lfleet -n "__fish_lfleet_needs_command" -f -a "dry-run" -d 'Decide and record only ("would drain"), for every check or one'
complete -c lfleet -n "__fish_lfleet_needs_command" -f -a "upgrade" -d 'Client upgrades in waves: drain, wait for jobs to end, install, reload or reboot, check, undrain (docs/upgrades.md)'
complete -c lfleet -n "__fish_lfleet_needs_command" -f -a "events" -d 'Recent fleet events'
complete -c lfleet -n "__fish_lfleet_needs_command" -f -a "completions" -d 'Print shell completions for lfleet (bash, zsh, fish, elvish, powershell)'
complete -c lfleet -n "__fish_lfleet_needs_command" -f -a "man" -d 'Print lfleet\'s man page (roff)'
complete -c lfleet -n "__fish_lfleet_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c lfleet -n "__fish_lfleet_using_subcommand nodes" -l state -d 'Only nodes in these states' -r -f -a "healthy\t''
unhealthy\t''
unknown\t''
silent\t''
powered-down\t''"
complete -c lfleet -n "__fish_lfleet_using_subcommand nodes" -l unhealthy -d 'Only nodes that are not healthy (same as --state unhealthy,unknown,silent,...)'
complete -c lfleet -n "__fish_lfleet_using_subcommand nodes" -l json -d 'JSON instead of tables: raw numbers (bytes per second, Unix milliseconds)'
complete -c lfleet -n "__fish_lfleet_using_subcommand nodes" -l utc -d 'Show times in UTC instead of the local zone'
complete -c lfleet -n "__fish_lfleet_using_subcommand nodes" -s h -l help -d 'Print help'
complete -c lfleet -n "__fish_lfleet_using_subcommand node" -l wait -d 'How long a command waits for the agent\'s result, in seconds' -r
complete -c lfleet -n "__fish_lfleet_using_subcommand node" -l json -d 'JSON instead of tables: raw numbers (bytes per second, Unix milliseconds)'
complete -c lfleet -n "__fish_lfleet_using_subcommand node" -l utc -d 'Show times in UTC instead of the local zone'
complete -c lfleet -n "__fish_lfleet_using_subcommand node" -s h -l help -d 'Print help'
complete -c lfleet -n "__fish_lfleet_using_subcommand token; and not __fish_seen_subcommand_from rotate help" -l json -d 'JSON instead of tables: raw numbers (bytes per second, Unix milliseconds)'
complete -c lfleet -n "__fish_lfleet_using_subcommand token; and not __fish_seen_subcommand_from rotate help" -l utc -d 'Show times in UTC instead of the local zone'
complete -c lfleet -n "__fish_lfleet_using_subcommand token; and not __fish_seen_subcommand_from rotate help" -s h -l help -d 'Print help'
complete -c lfleet -n "__fish_lfleet_using_subcommand token; and not __fish_seen_subcommand_from rotate help" -f -a "rotate" -d 'Replace the join token: the new one is printed once and written to the coordinator\'s token file; the old one is refused from now on; enrolled nodes are not affected'
complete -c lfleet -n "__fish_lfleet_using_subcommand token; and not __fish_seen_subcommand_from rotate help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c lfleet -n "__fish_lfleet_using_subcommand token; and __fish_seen_subcommand_from rotate" -l expires -d 'How long it is valid: `30m`, `12h`, `7d` (default: no expiry)' -r
complete -c lfleet -n "__fish_lfleet_using_subcommand token; and __fish_seen_subcommand_from rotate" -l role -d 'Nodes enrolling with it get this role (head, compute, login)' -r
complete -c lfleet -n "__fish_lfleet_using_subcommand token; and __fish_seen_subcommand_from rotate" -l nodes -d 'Only these nodes may enroll with it: a Slurm host list (`hpc-pg0-[1-100]`)' -r
complete -c lfleet -n "__fish_lfleet_using_subcommand token; and __fish_seen_subcommand_from rotate" -l json -d 'JSON instead of tables: raw numbers (bytes per second, Unix milliseconds)'
complete -c lfleet -n "__fish_lfleet_using_subcommand token; and __fish_seen_subcommand_from rotate" -l utc -d 'Show times in UTC instead of the local zone'
complete -c lfleet -n "__fish_lfleet_using_subcommand token; and __fish_seen_subcommand_from rotate" -s h -l help -d 'Print help'
complete -c lfleet -n "__fish_lfleet_using_subcommand token; and __fish_seen_subcommand_from help" -f -a "rotate" -d 'Replace the join token: the new one is printed once and written to the coordinator\'s token file; the old one is refused from now on; enrolled nodes are not affected'
complete -c lfleet -n "__fish_lfleet_using_subcommand token; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c lfleet -n "__fish_lfleet_using_subcommand certs" -l json -d 'JSON instead of tables: raw numbers (bytes per second, Unix milliseconds)'
complete -c lfleet -n "__fish_lfleet_using_subcommand certs" -l utc -d 'Show times in UTC instead of the local zone'
complete -c lfleet -n "__fish_lfleet_using_subcommand certs" -s h -l help -d 'Print help'
complete -c lfleet -n "__fish_lfleet_using_subcommand admin-cert; and not __fish_seen_subcommand_from revoke help" -l json -d 'JSON instead of tables: raw numbers (bytes per second, Unix milliseconds)'
complete -c lfleet -n "__fish_lfleet_using_subcommand admin-cert; and not __fish_seen_subcommand_from revoke help" -l utc -d 'Show times in UTC instead of the local zone'
complete -c lfleet -n "__fish_lfleet_using_subcommand admin-cert; and not __fish_seen_subcommand_from revoke help" -s h -l help -d 'Print help'
complete -c lfleet -n "__fish_lfleet_using_subcommand admin-cert; and not __fish_seen_subcommand_from revoke help" -f -a "revoke" -d 'Refuse every certificate issued to this operator so far'
complete -c lfleet -n "__fish_lfleet_using_subcommand admin-cert; and not __fish_seen_subcommand_from revoke help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c lfleet -n "__fish_lfleet_using_subcommand admin-cert; and __fish_seen_subcommand_from revoke" -l json -d 'JSON instead of tables: raw numbers (bytes per second, Unix milliseconds)'
complete -c lfleet -n "__fish_lfleet_using_subcommand admin-cert; and __fish_seen_subcommand_from revoke" -l utc -d 'Show times in UTC instead of the local zone'
complete -c lfleet -n "__fish_lfleet_using_subcommand admin-cert; and __fish_seen_subcommand_from revoke" -s h -l help -d 'Print help'
complete -c lfleet -n "__fish_lfleet_using_subcommand admin-cert; and __fish_seen_subcommand_from help" -f -a "revoke" -d 'Refuse every certificate issued to this operator so far'
complete -c lfleet -n "__fish_lfleet_using_subcommand admin-cert; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c lfleet -n "__fish_lfleet_using_subcommand fs" -l json -d 'JSON instead of tables: raw numbers (bytes per second, Unix milliseconds)'
complete -c lfleet -n "__fish_lfleet_using_subcommand fs" -l utc -d 'Show times in UTC instead of the local zone'
complete -c lfleet -n "__fish_lfleet_using_subcommand fs" -s h -l help -d 'Print help'
complete -c lfleet -n "__fish_lfleet_using_subcommand config; and not __fish_seen_subcommand_from show diff apply help" -l json -d 'JSON instead of tables: raw numbers (bytes per second, Unix milliseconds)'
complete -c lfleet -n "__fish_lfleet_using_subcommand config; and not __fish_seen_subcommand_from show diff apply help" -l utc -d 'Show times in UTC instead of the local zone'
complete -c lfleet -n "__fish_lfleet_using_subcommand config; and not __fish_seen_subcommand_from show diff apply help" -s h -l help -d 'Print help'
complete -c lfleet -n "__fish_lfleet_using_subcommand config; and not __fish_seen_subcommand_from show diff apply help" -f -a "show" -d 'The running configuration and its generation'
complete -c lfleet -n "__fish_lfleet_using_subcommand config; and not __fish_seen_subcommand_from show diff apply help" -f -a "diff" -d 'The difference from the running configuration and the nodes it would change'
complete -c lfleet -n "__fish_lfleet_using_subcommand config; and not __fish_seen_subcommand_from show diff apply help" -f -a "apply" -d 'Make a file the running configuration (a new generation, pushed to every node)'
complete -c lfleet -n "__fish_lfleet_using_subcommand config; and not __fish_seen_subcommand_from show diff apply help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c lfleet -n "__fish_lfleet_using_subcommand config; and __fish_seen_subcommand_from show" -l json -d 'JSON instead of tables: raw numbers (bytes per second, Unix milliseconds)'
complete -c lfleet -n "__fish_lfleet_using_subcommand config; and __fish_seen_subcommand_from show" -l utc -d 'Show times in UTC instead of the local zone'
complete -c lfleet -n "__fish_lfleet_using_subcommand config; and __fish_seen_subcommand_from show" -s h -l help -d 'Print help'
complete -c lfleet -n "__fish_lfleet_using_subcommand config; and __fish_seen_subcommand_from diff" -l json -d 'JSON instead of tables: raw numbers (bytes per second, Unix milliseconds)'
complete -c lfleet -n "__fish_lfleet_using_subcommand config; and __fish_seen_subcommand_from diff" -l utc -d 'Show times in UTC instead of the local zone'
complete -c lfleet -n "__fish_lfleet_using_subcommand config; and __fish_seen_subcommand_from diff" -s h -l help -d 'Print help'
complete -c lfleet -n "__fish_lfleet_using_subcommand config; and __fish_seen_subcommand_from apply" -l wait -d 'Seconds to wait for the connected nodes\' answers (exit 1 if any refuses)' -r
complete -c lfleet -n "__fish_lfleet_using_subcommand config; and __fish_seen_subcommand_from apply" -l json -d 'JSON instead of tables: raw numbers (bytes per second, Unix milliseconds)'
complete -c lfleet -n "__fish_lfleet_using_subcommand config; and __fish_seen_subcommand_from apply" -l utc -d 'Show times in UTC instead of the local zone'
complete -c lfleet -n "__fish_lfleet_using_subcommand config; and __fish_seen_subcommand_from apply" -s h -l help -d 'Print help'
complete -c lfleet -n "__fish_lfleet_using_subcommand config; and __fish_seen_subcommand_from help" -f -a "show" -d 'The running configuration and its generation'
complete -c lfleet -n "__fish_lfleet_using_subcommand config; and __fish_seen_subcommand_from help" -f -a "diff" -d 'The difference from the running configuration and the nodes it would change'
complete -c lfleet -n "__fish_lfleet_using_subcommand config; and __fish_seen_subcommand_from help" -f -a "apply" -d 'Make a file the running configuration (a new generation, pushed to every node)'
complete -c lfleet -n "__fish_lfleet_using_subcommand config; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c lfleet -n "__fish_lfleet_using_subcommand drains" -l json -d 'JSON instead of tables: raw numbers (bytes per second, Unix milliseconds)'
complete -c lfleet -n "__fish_lfleet_using_subcommand drains" -l utc -d 'Show times in UTC instead of the local zone'
complete -c lfleet -n "__fish_lfleet_using_subcommand drains" -s h -l help -d 'Print help'
complete -c lfleet -n "__fish_lfleet_using_subcommand undrain" -l note -d 'Why, for the record' -r
complete -c lfleet -n "__fish_lfleet_using_subcommand undrain" -l json -d 'JSON instead of tables: raw numbers (bytes per second, Unix milliseconds)'
complete -c lfleet -n "__fish_lfleet_using_subcommand undrain" -l utc -d 'Show times in UTC instead of the local zone'
complete -c lfleet -n "__fish_lfleet_using_subcommand undrain" -s h -l help -d 'Print help'
complete -c lfleet -n "__fish_lfleet_using_subcommand incidents" -l open -d 'Only incidents not closed yet'
complete -c lfleet -n "__fish_lfleet_using_subcommand incidents" -l json -d 'JSON instead of tables: raw numbers (bytes per second, Unix milliseconds)'
complete -c lfleet -n "__fish_lfleet_using_subcommand incidents" -l utc -d 'Show times in UTC instead of the local zone'
complete -c lfleet -n "__fish_lfleet_using_subcommand incidents" -s h -l help -d 'Print help'
complete -c lfleet -n "__fish_lfleet_using_subcommand policy; and not __fish_seen_subcommand_from show help" -l json -d 'JSON instead of tables: raw numbers (bytes per second, Unix milliseconds)'
complete -c lfleet -n "__fish_lfleet_using_subcommand policy; and not __fish_seen_subcommand_from show help" -l utc -d 'Show times in UTC instead of the local zone'
complete -c lfleet -n "__fish_lfleet_using_subcommand policy; and not __fish_seen_subcommand_from show help" -s h -l help -d 'Print help'
complete -c lfleet -n "__fish_lfleet_using_subcommand policy; and not __fish_seen_subcommand_from show help" -f -a "show" -d 'The policy TOML in force, with the operator\'s dry-run switches'
complete -c lfleet -n "__fish_lfleet_using_subcommand policy; and not __fish_seen_subcommand_from show help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c lfleet -n "__fish_lfleet_using_subcommand policy; and __fish_seen_subcommand_from show" -l json -d 'JSON instead of tables: raw numbers (bytes per second, Unix milliseconds)'
complete -c lfleet -n "__fish_lfleet_using_subcommand policy; and __fish_seen_subcommand_from show" -l utc -d 'Show times in UTC instead of the local zone'
complete -c lfleet -n "__fish_lfleet_using_subcommand policy; and __fish_seen_subcommand_from show" -s h -l help -d 'Print help'
complete -c lfleet -n "__fish_lfleet_using_subcommand policy; and __fish_seen_subcommand_from help" -f -a "show" -d 'The policy TOML in force, with the operator\'s dry-run switches'
complete -c lfleet -n "__fish_lfleet_using_subcommand policy; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c lfleet -n "__fish_lfleet_using_subcommand dry-run" -l check -d 'One check only (e.g. ib.ports); every check when absent' -r
complete -c lfleet -n "__fish_lfleet_using_subcommand dry-run" -l json -d 'JSON instead of tables: raw numbers (bytes per second, Unix milliseconds)'
complete -c lfleet -n "__fish_lfleet_using_subcommand dry-run" -l utc -d 'Show times in UTC instead of the local zone'
complete -c lfleet -n "__fish_lfleet_using_subcommand dry-run" -s h -l help -d 'Print help'
complete -c lfleet -n "__fish_lfleet_using_subcommand upgrade; and not __fish_seen_subcommand_from plan start status pause resume abort help" -l json -d 'JSON instead of tables: raw numbers (bytes per second, Unix milliseconds)'
complete -c lfleet -n "__fish_lfleet_using_subcommand upgrade; and not __fish_seen_subcommand_from plan start status pause resume abort help" -l utc -d 'Show times in UTC instead of the local zone'
complete -c lfleet -n "__fish_lfleet_using_subcommand upgrade; and not __fish_seen_subcommand_from plan start status pause resume abort help" -s h -l help -d 'Print help'
complete -c lfleet -n "__fish_lfleet_using_subcommand upgrade; and not __fish_seen_subcommand_from plan start status pause resume abort help" -f -a "plan" -d 'The waves a rollout would run and the nodes it would skip, with why; changes nothing'
complete -c lfleet -n "__fish_lfleet_using_subcommand upgrade; and not __fish_seen_subcommand_from plan start status pause resume abort help" -f -a "start" -d 'Start a rollout (one at a time)'
complete -c lfleet -n "__fish_lfleet_using_subcommand upgrade; and not __fish_seen_subcommand_from plan start status pause resume abort help" -f -a "status" -d 'Progress per wave and per node'
complete -c lfleet -n "__fish_lfleet_using_subcommand upgrade; and not __fish_seen_subcommand_from plan start status pause resume abort help" -f -a "pause" -d 'Start no more nodes; nodes in a step finish it'
complete -c lfleet -n "__fish_lfleet_using_subcommand upgrade; and not __fish_seen_subcommand_from plan start status pause resume abort help" -f -a "resume" -d 'Go on; failed nodes are tried again'
complete -c lfleet -n "__fish_lfleet_using_subcommand upgrade; and not __fish_seen_subcommand_from plan start status pause resume abort help" -f -a "abort" -d 'Stop after the current steps; the rest stays untouched'
complete -c lfleet -n "__fish_lfleet_using_subcommand upgrade; and not __fish_seen_subcommand_from plan start status pause resume abort help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c lfleet -n "__fish_lfleet_using_subcommand upgrade; and __fish_seen_subcommand_from plan" -l client -d 'The client version, as AMLFS names its packages (2.16.1-12-g8e3f1a2)' -r
complete -c lfleet -n "__fish_lfleet_using_subcommand upgrade; and __fish_seen_subcommand_from plan" -l nodes -d 'Only these nodes: a Slurm host list (n[1-8],login1); head and login nodes only when named' -r
complete -c lfleet -n "__fish_lfleet_using_subcommand upgrade; and __fish_seen_subcommand_from plan" -l wave -d 'Nodes out at once: a count (4) or a share of the eligible nodes (10%)' -r
complete -c lfleet -n "__fish_lfleet_using_subcommand upgrade; and __fish_seen_subcommand_from plan" -l max-failures -d 'Pause by itself when this many nodes failed' -r
complete -c lfleet -n "__fish_lfleet_using_subcommand upgrade; and __fish_seen_subcommand_from plan" -l json -d 'JSON instead of tables: raw numbers (bytes per second, Unix milliseconds)'
complete -c lfleet -n "__fish_lfleet_using_subcommand upgrade; and __fish_seen_subcommand_from plan" -l utc -d 'Show times in UTC instead of the local zone'
complete -c lfleet -n "__fish_lfleet_using_subcommand upgrade; and __fish_seen_subcommand_from plan" -s h -l help -d 'Print help'
complete -c lfleet -n "__fish_lfleet_using_subcommand upgrade; and __fish_seen_subcommand_from start" -l client -d 'The client version, as AMLFS names its packages (2.16.1-12-g8e3f1a2)' -r
complete -c lfleet -n "__fish_lfleet_using_subcommand upgrade; and __fish_seen_subcommand_from start" -l nodes -d 'Only these nodes: a Slurm host list (n[1-8],login1); head and login nodes only when named' -r
complete -c lfleet -n "__fish_lfleet_using_subcommand upgrade; and __fish_seen_subcommand_from start" -l wave -d 'Nodes out at once: a count (4) or a share of the eligible nodes (10%)' -r
complete -c lfleet -n "__fish_lfleet_using_subcommand upgrade; and __fish_seen_subcommand_from start" -l max-failures -d 'Pause by itself when this many nodes failed' -r
complete -c lfleet -n "__fish_lfleet_using_subcommand upgrade; and __fish_seen_subcommand_from start" -l step-timeout -d 'Seconds a node may take from its new configuration (or its reboot) to a healthy report before it fails' -r
complete -c lfleet -n "__fish_lfleet_using_subcommand upgrade; and __fish_seen_subcommand_from start" -l no-reboot -d 'Never reboot: a node whose old module cannot be unloaded fails (reboot-required)'
complete -c lfleet -n "__fish_lfleet_using_subcommand upgrade; and __fish_seen_subcommand_from start" -l json -d 'JSON instead of tables: raw numbers (bytes per second, Unix milliseconds)'
complete -c lfleet -n "__fish_lfleet_using_subcommand upgrade; and __fish_seen_subcommand_from start" -l utc -d 'Show times in UTC instead of the local zone'
complete -c lfleet -n "__fish_lfleet_using_subcommand upgrade; and __fish_seen_subcommand_from start" -s h -l help -d 'Print help'
complete -c lfleet -n "__fish_lfleet_using_subcommand upgrade; and __fish_seen_subcommand_from status" -l json -d 'JSON instead of tables: raw numbers (bytes per second, Unix milliseconds)'
complete -c lfleet -n "__fish_lfleet_using_subcommand upgrade; and __fish_seen_subcommand_from status" -l utc -d 'Show times in UTC instead of the local zone'
complete -c lfleet -n "__fish_lfleet_using_subcommand upgrade; and __fish_seen_subcommand_from status" -s h -l help -d 'Print help'
complete -c lfleet -n "__fish_lfleet_using_subcommand upgrade; and __fish_seen_subcommand_from pause" -l json -d 'JSON instead of tables: raw numbers (bytes per second, Unix milliseconds)'
complete -c lfleet -n "__fish_lfleet_using_subcommand upgrade; and __fish_seen_subcommand_from pause" -l utc -d 'Show times in UTC instead of the local zone'
complete -c lfleet -n "__fish_lfleet_using_subcommand upgrade; and __fish_seen_subcommand_from pause" -s h -l help -d 'Print help'
complete -c lfleet -n "__fish_lfleet_using_subcommand upgrade; and __fish_seen_subcommand_from resume" -l json -d 'JSON instead of tables: raw numbers (bytes per second, Unix milliseconds)'
complete -c lfleet -n "__fish_lfleet_using_subcommand upgrade; and __fish_seen_subcommand_from resume" -l utc -d 'Show times in UTC instead of the local zone'
complete -c lfleet -n "__fish_lfleet_using_subcommand upgrade; and __fish_seen_subcommand_from resume" -s h -l help -d 'Print help'
complete -c lfleet -n "__fish_lfleet_using_subcommand upgrade; and __fish_seen_subcommand_from abort" -l json -d 'JSON instead of tables: raw numbers (bytes per second, Unix milliseconds)'
complete -c lfleet -n "__fish_lfleet_using_subcommand upgrade; and __fish_seen_subcommand_from abort" -l utc -d 'Show times in UTC instead of the local zone'
complete -c lfleet -n "__fish_lfleet_using_subcommand upgrade; and __fish_seen_subcommand_from abort" -s h -l help -d 'Print help'
complete -c lfleet -n "__fish_lfleet_using_subcommand upgrade; and __fish_seen_subcommand_from help" -f -a "plan" -d 'The waves a rollout would run and the nodes it would skip, with why; changes nothing'
complete -c lfleet -n "__fish_lfleet_using_subcommand upgrade; and __fish_seen_subcommand_from help" -f -a "start" -d 'Start a rollout (one at a time)'
complete -c lfleet -n "__fish_lfleet_using_subcommand upgrade; and __fish_seen_subcommand_from help" -f -a "status" -d 'Progress per wave and per node'
complete -c lfleet -n "__fish_lfleet_using_subcommand upgrade; and __fish_seen_subcommand_from help" -f -a "pause" -d 'Start no more nodes; nodes in a step finish it'
complete -c lfleet -n "__fish_lfleet_using_subcommand upgrade; and __fish_seen_subcommand_from help" -f -a "resume" -d 'Go on; failed nodes are tried again'
complete -c lfleet -n "__fish_lfleet_using_subcommand upgrade; and __fish_seen_subcommand_from help" -f -a "abort" -d 'Stop after the current steps; the rest stays untouched'
complete -c lfleet -n "__fish_lfleet_using_subcommand upgrade; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c lfleet -n "__fish_lfleet_using_subcommand events" -l minutes -d 'How far back, in minutes' -r
complete -c lfleet -n "__fish_lfleet_using_subcommand events" -l json -d 'JSON instead of tables: raw numbers (bytes per second, Unix milliseconds)'
complete -c lfleet -n "__fish_lfleet_using_subcommand events" -l utc -d 'Show times in UTC instead of the local zone'
complete -c lfleet -n "__fish_lfleet_using_subcommand events" -s h -l help -d 'Print help'
complete -c lfleet -n "__fish_lfleet_using_subcommand completions" -l json -d 'JSON instead of tables: raw numbers (bytes per second, Unix milliseconds)'
complete -c lfleet -n "__fish_lfleet_using_subcommand completions" -l utc -d 'Show times in UTC instead of the local zone'
complete -c lfleet -n "__fish_lfleet_using_subcommand completions" -s h -l help -d 'Print help'
complete -c lfleet -n "__fish_lfleet_using_subcommand man" -l json -d 'JSON instead of tables: raw numbers (bytes per second, Unix milliseconds)'
complete -c lfleet -n "__fish_lfleet_using_subcommand man" -l utc -d 'Show times in UTC instead of the local zone'
complete -c lfleet -n "__fish_lfleet_using_subcommand man" -s h -l help -d 'Print help'
complete -c lfleet -n "__fish_lfleet_using_subcommand help; and not __fish_seen_subcommand_from nodes node token certs admin-cert fs config drains undrain incidents policy dry-run upgrade events completions man help" -f -a "nodes" -d 'Every node: health, generation, mounts, last report, problems'
complete -c lfleet -n "__fish_lfleet_using_subcommand help; and not __fish_seen_subcommand_from nodes node token certs admin-cert fs config drains undrain incidents policy dry-run upgrade events completions man help" -f -a "node" -d 'One node in detail (`node NAME`); a command to its agent (`node NAME reconcile`, `node NAME remount MOUNT`, `node NAME probe`: waits for the agent\'s result); or release a node\'s name (`node remove NAME`: its certificate is refused from then on) or only its key (`node rekey NAME`: a reimaged VM may enroll again)'
complete -c lfleet -n "__fish_lfleet_using_subcommand help; and not __fish_seen_subcommand_from nodes node token certs admin-cert fs config drains undrain incidents policy dry-run upgrade events completions man help" -f -a "token" -d 'The join token'
complete -c lfleet -n "__fish_lfleet_using_subcommand help; and not __fish_seen_subcommand_from nodes node token certs admin-cert fs config drains undrain incidents policy dry-run upgrade events completions man help" -f -a "certs" -d 'Issued certificates: every node\'s key binding and every operator certificate, with expiry and state'
complete -c lfleet -n "__fish_lfleet_using_subcommand help; and not __fish_seen_subcommand_from nodes node token certs admin-cert fs config drains undrain incidents policy dry-run upgrade events completions man help" -f -a "admin-cert" -d 'Operator certificates'
complete -c lfleet -n "__fish_lfleet_using_subcommand help; and not __fish_seen_subcommand_from nodes node token certs admin-cert fs config drains undrain incidents policy dry-run upgrade events completions man help" -f -a "fs" -d 'Filesystems: clients mounted vs expected, throughput, import states'
complete -c lfleet -n "__fish_lfleet_using_subcommand help; and not __fish_seen_subcommand_from nodes node token certs admin-cert fs config drains undrain incidents policy dry-run upgrade events completions man help" -f -a "config" -d 'The desired configuration'
complete -c lfleet -n "__fish_lfleet_using_subcommand help; and not __fish_seen_subcommand_from nodes node token certs admin-cert fs config drains undrain incidents policy dry-run upgrade events completions man help" -f -a "drains" -d 'lfleet\'s drain ledger beside Slurm\'s view of drained nodes'
complete -c lfleet -n "__fish_lfleet_using_subcommand help; and not __fish_seen_subcommand_from nodes node token certs admin-cert fs config drains undrain incidents policy dry-run upgrade events completions man help" -f -a "undrain" -d 'Lift a drain lfleet made (recorded with the operator\'s name)'
complete -c lfleet -n "__fish_lfleet_using_subcommand help; and not __fish_seen_subcommand_from nodes node token certs admin-cert fs config drains undrain incidents policy dry-run upgrade events completions man help" -f -a "incidents" -d 'Filesystem incidents (a check failing on a large share of a filesystem\'s nodes)'
complete -c lfleet -n "__fish_lfleet_using_subcommand help; and not __fish_seen_subcommand_from nodes node token certs admin-cert fs config drains undrain incidents policy dry-run upgrade events completions man help" -f -a "policy" -d 'The drain policy in force'
complete -c lfleet -n "__fish_lfleet_using_subcommand help; and not __fish_seen_subcommand_from nodes node token certs admin-cert fs config drains undrain incidents policy dry-run upgrade events completions man help" -f -a "dry-run" -d 'Decide and record only ("would drain"), for every check or one'
complete -c lfleet -n "__fish_lfleet_using_subcommand help; and not __fish_seen_subcommand_from nodes node token certs admin-cert fs config drains undrain incidents policy dry-run upgrade events completions man help" -f -a "upgrade" -d 'Client upgrades in waves: drain, wait for jobs to end, install, reload or reboot, check, undrain (docs/upgrades.md)'
complete -c lfleet -n "__fish_lfleet_using_subcommand help; and not __fish_seen_subcommand_from nodes node token certs admin-cert fs config drains undrain incidents policy dry-run upgrade events completions man help" -f -a "events" -d 'Recent fleet events'
complete -c lfleet -n "__fish_lfleet_using_subcommand help; and not __fish_seen_subcommand_from nodes node token certs admin-cert fs config drains undrain incidents policy dry-run upgrade events completions man help" -f -a "completions" -d 'Print shell completions for lfleet (bash, zsh, fish, elvish, powershell)'
complete -c lfleet -n "__fish_lfleet_using_subcommand help; and not __fish_seen_subcommand_from nodes node token certs admin-cert fs config drains undrain incidents policy dry-run upgrade events completions man help" -f -a "man" -d 'Print lfleet\'s man page (roff)'
complete -c lfleet -n "__fish_lfleet_using_subcommand help; and not __fish_seen_subcommand_from nodes node token certs admin-cert fs config drains undrain incidents policy dry-run upgrade events completions man help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c lfleet -n "__fish_lfleet_using_subcommand help; and __fish_seen_subcommand_from token" -f -a "rotate" -d 'Replace the join token: the new one is printed once and written to the coordinator\'s token file; the old one is refused from now on; enrolled nodes are not affected'
complete -c lfleet -n "__fish_lfleet_using_subcommand help; and __fish_seen_subcommand_from admin-cert" -f -a "revoke" -d 'Refuse every certificate issued to this operator so far'
complete -c lfleet -n "__fish_lfleet_using_subcommand help; and __fish_seen_subcommand_from config" -f -a "show" -d 'The running configuration and its generation'
complete -c lfleet -n "__fish_lfleet_using_subcommand help; and __fish_seen_subcommand_from config" -f -a "diff" -d 'The difference from the running configuration and the nodes it would change'
complete -c lfleet -n "__fish_lfleet_using_subcommand help; and __fish_seen_subcommand_from config" -f -a "apply" -d 'Make a file the running configuration (a new generation, pushed to every node)'
complete -c lfleet -n "__fish_lfleet_using_subcommand help; and __fish_seen_subcommand_from policy" -f -a "show" -d 'The policy TOML in force, with the operator\'s dry-run switches'
complete -c lfleet -n "__fish_lfleet_using_subcommand help; and __fish_seen_subcommand_from upgrade" -f -a "plan" -d 'The waves a rollout would run and the nodes it would skip, with why; changes nothing'
complete -c lfleet -n "__fish_lfleet_using_subcommand help; and __fish_seen_subcommand_from upgrade" -f -a "start" -d 'Start a rollout (one at a time)'
complete -c lfleet -n "__fish_lfleet_using_subcommand help; and __fish_seen_subcommand_from upgrade" -f -a "status" -d 'Progress per wave and per node'
complete -c lfleet -n "__fish_lfleet_using_subcommand help; and __fish_seen_subcommand_from upgrade" -f -a "pause" -d 'Start no more nodes; nodes in a step finish it'
complete -c lfleet -n "__fish_lfleet_using_subcommand help; and __fish_seen_subcommand_from upgrade" -f -a "resume" -d 'Go on; failed nodes are tried again'
complete -c lfleet -n "__fish_lfleet_using_subcommand help; and __fish_seen_subcommand_from upgrade" -f -a "abort" -d 'Stop after the current steps; the rest stays untouched'
