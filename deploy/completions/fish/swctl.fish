# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_swctl_global_optspecs
    string join \n server= config= n/namespace= h/help V/version
end

function __fish_swctl_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_swctl_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_swctl_using_subcommand
    set -l cmd (__fish_swctl_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c swctl -n "__fish_swctl_needs_command" -l server -d 'Control plane address (overrides the credentials file\'s): https://HOST:PORT, unix:///PATH, or http://HOST:PORT for a control plane started with --insecure; several, comma-separated, are tried in turn' -r
complete -c swctl -n "__fish_swctl_needs_command" -l config -d 'Credentials file (kubeconfig-shaped; the control plane writes <data-dir>/admin.conf). Default: $SWITCHYARD_CONFIG, else ~/.switchyard/config' -r -F
complete -c swctl -n "__fish_swctl_needs_command" -s n -l namespace -d 'Namespace of the request' -r
complete -c swctl -n "__fish_swctl_needs_command" -s h -l help -d 'Print help'
complete -c swctl -n "__fish_swctl_needs_command" -s V -l version -d 'Print version'
complete -c swctl -n "__fish_swctl_needs_command" -f -a "apply" -d 'Create or update objects from manifests (YAML or JSON; a file, a directory or - for stdin)'
complete -c swctl -n "__fish_swctl_needs_command" -f -a "get" -d 'List objects: `swctl get service,endpoints frontend-svc`'
complete -c swctl -n "__fish_swctl_needs_command" -f -a "describe" -d 'Show one object in detail'
complete -c swctl -n "__fish_swctl_needs_command" -f -a "delete" -d 'Delete objects by kind and name, or those in manifests'
complete -c swctl -n "__fish_swctl_needs_command" -f -a "create" -d 'Create a Service or Namespace from flags'
complete -c swctl -n "__fish_swctl_needs_command" -f -a "expose" -d 'Expose a Deployment or Pod as a new Service'
complete -c swctl -n "__fish_swctl_needs_command" -f -a "port-forward" -d 'Forward local ports to a pod, through the control plane: `swctl port-forward svc/x 8080:80`'
complete -c swctl -n "__fish_swctl_needs_command" -f -a "env" -d 'Print the Service environment variables a pod gets (`--export` for `eval`)'
complete -c swctl -n "__fish_swctl_needs_command" -f -a "config" -d 'Credentials for other tools: `swctl config kubeconfig` for kubectl and every Kubernetes client library'
complete -c swctl -n "__fish_swctl_needs_command" -f -a "completion" -d 'Print a shell completion script'
complete -c swctl -n "__fish_swctl_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c swctl -n "__fish_swctl_using_subcommand apply" -s f -l filename -d 'Manifest file, directory, or - for stdin (repeatable)' -r
complete -c swctl -n "__fish_swctl_using_subcommand apply" -l validate -d 'What to do with fields the API does not know (they would be dropped): warn and apply, refuse the object, or say nothing' -r -f -a "strict\t''
warn\t''
ignore\t''"
complete -c swctl -n "__fish_swctl_using_subcommand apply" -l server -d 'Control plane address (overrides the credentials file\'s): https://HOST:PORT, unix:///PATH, or http://HOST:PORT for a control plane started with --insecure; several, comma-separated, are tried in turn' -r
complete -c swctl -n "__fish_swctl_using_subcommand apply" -l config -d 'Credentials file (kubeconfig-shaped; the control plane writes <data-dir>/admin.conf). Default: $SWITCHYARD_CONFIG, else ~/.switchyard/config' -r -F
complete -c swctl -n "__fish_swctl_using_subcommand apply" -s n -l namespace -d 'Namespace of the request' -r
complete -c swctl -n "__fish_swctl_using_subcommand apply" -s h -l help -d 'Print help'
complete -c swctl -n "__fish_swctl_using_subcommand get" -s l -l selector -d 'Label selector, e.g. `app=frontend,tier!=db`' -r
complete -c swctl -n "__fish_swctl_using_subcommand get" -s o -l output -d 'Output format' -r -f -a "wide\t''
yaml\t''
json\t''
name\t''"
complete -c swctl -n "__fish_swctl_using_subcommand get" -l server -d 'Control plane address (overrides the credentials file\'s): https://HOST:PORT, unix:///PATH, or http://HOST:PORT for a control plane started with --insecure; several, comma-separated, are tried in turn' -r
complete -c swctl -n "__fish_swctl_using_subcommand get" -l config -d 'Credentials file (kubeconfig-shaped; the control plane writes <data-dir>/admin.conf). Default: $SWITCHYARD_CONFIG, else ~/.switchyard/config' -r -F
complete -c swctl -n "__fish_swctl_using_subcommand get" -s n -l namespace -d 'Namespace of the request' -r
complete -c swctl -n "__fish_swctl_using_subcommand get" -s A -l all-namespaces -d 'List across all namespaces'
complete -c swctl -n "__fish_swctl_using_subcommand get" -s w -l watch -d 'After listing, watch for changes'
complete -c swctl -n "__fish_swctl_using_subcommand get" -l no-headers -d 'Omit the table header'
complete -c swctl -n "__fish_swctl_using_subcommand get" -l show-labels -d 'Show each object\'s labels as the last column'
complete -c swctl -n "__fish_swctl_using_subcommand get" -s h -l help -d 'Print help'
complete -c swctl -n "__fish_swctl_using_subcommand describe" -l server -d 'Control plane address (overrides the credentials file\'s): https://HOST:PORT, unix:///PATH, or http://HOST:PORT for a control plane started with --insecure; several, comma-separated, are tried in turn' -r
complete -c swctl -n "__fish_swctl_using_subcommand describe" -l config -d 'Credentials file (kubeconfig-shaped; the control plane writes <data-dir>/admin.conf). Default: $SWITCHYARD_CONFIG, else ~/.switchyard/config' -r -F
complete -c swctl -n "__fish_swctl_using_subcommand describe" -s n -l namespace -d 'Namespace of the request' -r
complete -c swctl -n "__fish_swctl_using_subcommand describe" -s h -l help -d 'Print help'
complete -c swctl -n "__fish_swctl_using_subcommand delete" -s f -l filename -d 'Delete the objects in these manifests' -r
complete -c swctl -n "__fish_swctl_using_subcommand delete" -l server -d 'Control plane address (overrides the credentials file\'s): https://HOST:PORT, unix:///PATH, or http://HOST:PORT for a control plane started with --insecure; several, comma-separated, are tried in turn' -r
complete -c swctl -n "__fish_swctl_using_subcommand delete" -l config -d 'Credentials file (kubeconfig-shaped; the control plane writes <data-dir>/admin.conf). Default: $SWITCHYARD_CONFIG, else ~/.switchyard/config' -r -F
complete -c swctl -n "__fish_swctl_using_subcommand delete" -s n -l namespace -d 'Namespace of the request' -r
complete -c swctl -n "__fish_swctl_using_subcommand delete" -l ignore-not-found -d 'Treat a missing object as success'
complete -c swctl -n "__fish_swctl_using_subcommand delete" -s h -l help -d 'Print help'
complete -c swctl -n "__fish_swctl_using_subcommand create; and not __fish_seen_subcommand_from service svc namespace ns user token help" -l server -d 'Control plane address (overrides the credentials file\'s): https://HOST:PORT, unix:///PATH, or http://HOST:PORT for a control plane started with --insecure; several, comma-separated, are tried in turn' -r
complete -c swctl -n "__fish_swctl_using_subcommand create; and not __fish_seen_subcommand_from service svc namespace ns user token help" -l config -d 'Credentials file (kubeconfig-shaped; the control plane writes <data-dir>/admin.conf). Default: $SWITCHYARD_CONFIG, else ~/.switchyard/config' -r -F
complete -c swctl -n "__fish_swctl_using_subcommand create; and not __fish_seen_subcommand_from service svc namespace ns user token help" -s n -l namespace -d 'Namespace of the request' -r
complete -c swctl -n "__fish_swctl_using_subcommand create; and not __fish_seen_subcommand_from service svc namespace ns user token help" -s h -l help -d 'Print help'
complete -c swctl -n "__fish_swctl_using_subcommand create; and not __fish_seen_subcommand_from service svc namespace ns user token help" -f -a "service" -d 'Create a Service of the given type'
complete -c swctl -n "__fish_swctl_using_subcommand create; and not __fish_seen_subcommand_from service svc namespace ns user token help" -f -a "svc" -d 'Create a Service of the given type'
complete -c swctl -n "__fish_swctl_using_subcommand create; and not __fish_seen_subcommand_from service svc namespace ns user token help" -f -a "namespace" -d 'Create a Namespace'
complete -c swctl -n "__fish_swctl_using_subcommand create; and not __fish_seen_subcommand_from service svc namespace ns user token help" -f -a "ns" -d 'Create a Namespace'
complete -c swctl -n "__fish_swctl_using_subcommand create; and not __fish_seen_subcommand_from service svc namespace ns user token help" -f -a "user" -d 'Issue a user\'s client certificate and write their credentials file'
complete -c swctl -n "__fish_swctl_using_subcommand create; and not __fish_seen_subcommand_from service svc namespace ns user token help" -f -a "token" -d 'Make a join token for a node; prints it, then the agent command'
complete -c swctl -n "__fish_swctl_using_subcommand create; and not __fish_seen_subcommand_from service svc namespace ns user token help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c swctl -n "__fish_swctl_using_subcommand create; and __fish_seen_subcommand_from service" -l server -d 'Control plane address (overrides the credentials file\'s): https://HOST:PORT, unix:///PATH, or http://HOST:PORT for a control plane started with --insecure; several, comma-separated, are tried in turn' -r
complete -c swctl -n "__fish_swctl_using_subcommand create; and __fish_seen_subcommand_from service" -l config -d 'Credentials file (kubeconfig-shaped; the control plane writes <data-dir>/admin.conf). Default: $SWITCHYARD_CONFIG, else ~/.switchyard/config' -r -F
complete -c swctl -n "__fish_swctl_using_subcommand create; and __fish_seen_subcommand_from service" -s n -l namespace -d 'Namespace of the request' -r
complete -c swctl -n "__fish_swctl_using_subcommand create; and __fish_seen_subcommand_from service" -s h -l help -d 'Print help'
complete -c swctl -n "__fish_swctl_using_subcommand create; and __fish_seen_subcommand_from service" -f -a "clusterip" -d 'A ClusterIP Service (`--clusterip=None` for headless)'
complete -c swctl -n "__fish_swctl_using_subcommand create; and __fish_seen_subcommand_from service" -f -a "nodeport" -d 'A NodePort Service'
complete -c swctl -n "__fish_swctl_using_subcommand create; and __fish_seen_subcommand_from service" -f -a "loadbalancer" -d 'A LoadBalancer Service'
complete -c swctl -n "__fish_swctl_using_subcommand create; and __fish_seen_subcommand_from service" -f -a "externalname" -d 'An ExternalName Service (`--external-name`)'
complete -c swctl -n "__fish_swctl_using_subcommand create; and __fish_seen_subcommand_from service" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c swctl -n "__fish_swctl_using_subcommand create; and __fish_seen_subcommand_from svc" -l server -d 'Control plane address (overrides the credentials file\'s): https://HOST:PORT, unix:///PATH, or http://HOST:PORT for a control plane started with --insecure; several, comma-separated, are tried in turn' -r
complete -c swctl -n "__fish_swctl_using_subcommand create; and __fish_seen_subcommand_from svc" -l config -d 'Credentials file (kubeconfig-shaped; the control plane writes <data-dir>/admin.conf). Default: $SWITCHYARD_CONFIG, else ~/.switchyard/config' -r -F
complete -c swctl -n "__fish_swctl_using_subcommand create; and __fish_seen_subcommand_from svc" -s n -l namespace -d 'Namespace of the request' -r
complete -c swctl -n "__fish_swctl_using_subcommand create; and __fish_seen_subcommand_from svc" -s h -l help -d 'Print help'
complete -c swctl -n "__fish_swctl_using_subcommand create; and __fish_seen_subcommand_from svc" -f -a "clusterip" -d 'A ClusterIP Service (`--clusterip=None` for headless)'
complete -c swctl -n "__fish_swctl_using_subcommand create; and __fish_seen_subcommand_from svc" -f -a "nodeport" -d 'A NodePort Service'
complete -c swctl -n "__fish_swctl_using_subcommand create; and __fish_seen_subcommand_from svc" -f -a "loadbalancer" -d 'A LoadBalancer Service'
complete -c swctl -n "__fish_swctl_using_subcommand create; and __fish_seen_subcommand_from svc" -f -a "externalname" -d 'An ExternalName Service (`--external-name`)'
complete -c swctl -n "__fish_swctl_using_subcommand create; and __fish_seen_subcommand_from svc" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c swctl -n "__fish_swctl_using_subcommand create; and __fish_seen_subcommand_from namespace" -l server -d 'Control plane address (overrides the credentials file\'s): https://HOST:PORT, unix:///PATH, or http://HOST:PORT for a control plane started with --insecure; several, comma-separated, are tried in turn' -r
complete -c swctl -n "__fish_swctl_using_subcommand create; and __fish_seen_subcommand_from namespace" -l config -d 'Credentials file (kubeconfig-shaped; the control plane writes <data-dir>/admin.conf). Default: $SWITCHYARD_CONFIG, else ~/.switchyard/config' -r -F
complete -c swctl -n "__fish_swctl_using_subcommand create; and __fish_seen_subcommand_from namespace" -s n -l namespace -d 'Namespace of the request' -r
complete -c swctl -n "__fish_swctl_using_subcommand create; and __fish_seen_subcommand_from namespace" -s h -l help -d 'Print help'
complete -c swctl -n "__fish_swctl_using_subcommand create; and __fish_seen_subcommand_from ns" -l server -d 'Control plane address (overrides the credentials file\'s): https://HOST:PORT, unix:///PATH, or http://HOST:PORT for a control plane started with --insecure; several, comma-separated, are tried in turn' -r
complete -c swctl -n "__fish_swctl_using_subcommand create; and __fish_seen_subcommand_from ns" -l config -d 'Credentials file (kubeconfig-shaped; the control plane writes <data-dir>/admin.conf). Default: $SWITCHYARD_CONFIG, else ~/.switchyard/config' -r -F
complete -c swctl -n "__fish_swctl_using_subcommand create; and __fish_seen_subcommand_from ns" -s n -l namespace -d 'Namespace of the request' -r
complete -c swctl -n "__fish_swctl_using_subcommand create; and __fish_seen_subcommand_from ns" -s h -l help -d 'Print help'
complete -c swctl -n "__fish_swctl_using_subcommand create; and __fish_seen_subcommand_from user" -l role -d 'admin (everything) or view (get, describe, watch, env)' -r
complete -c swctl -n "__fish_swctl_using_subcommand create; and __fish_seen_subcommand_from user" -l ttl -d 'Lifetime of the certificate' -r
complete -c swctl -n "__fish_swctl_using_subcommand create; and __fish_seen_subcommand_from user" -s o -l output -d 'Where to write the credentials file (mode 0600); stdout when omitted' -r -F
complete -c swctl -n "__fish_swctl_using_subcommand create; and __fish_seen_subcommand_from user" -l server -d 'Control plane address (overrides the credentials file\'s): https://HOST:PORT, unix:///PATH, or http://HOST:PORT for a control plane started with --insecure; several, comma-separated, are tried in turn' -r
complete -c swctl -n "__fish_swctl_using_subcommand create; and __fish_seen_subcommand_from user" -l config -d 'Credentials file (kubeconfig-shaped; the control plane writes <data-dir>/admin.conf). Default: $SWITCHYARD_CONFIG, else ~/.switchyard/config' -r -F
complete -c swctl -n "__fish_swctl_using_subcommand create; and __fish_seen_subcommand_from user" -s n -l namespace -d 'Namespace of the request' -r
complete -c swctl -n "__fish_swctl_using_subcommand create; and __fish_seen_subcommand_from user" -s h -l help -d 'Print help'
complete -c swctl -n "__fish_swctl_using_subcommand create; and __fish_seen_subcommand_from token" -l node -d 'Only this node may join with the token' -r
complete -c swctl -n "__fish_swctl_using_subcommand create; and __fish_seen_subcommand_from token" -l ttl -d 'How long the token may be used' -r
complete -c swctl -n "__fish_swctl_using_subcommand create; and __fish_seen_subcommand_from token" -l server -d 'Control plane address (overrides the credentials file\'s): https://HOST:PORT, unix:///PATH, or http://HOST:PORT for a control plane started with --insecure; several, comma-separated, are tried in turn' -r
complete -c swctl -n "__fish_swctl_using_subcommand create; and __fish_seen_subcommand_from token" -l config -d 'Credentials file (kubeconfig-shaped; the control plane writes <data-dir>/admin.conf). Default: $SWITCHYARD_CONFIG, else ~/.switchyard/config' -r -F
complete -c swctl -n "__fish_swctl_using_subcommand create; and __fish_seen_subcommand_from token" -s n -l namespace -d 'Namespace of the request' -r
complete -c swctl -n "__fish_swctl_using_subcommand create; and __fish_seen_subcommand_from token" -l reusable -d 'Any number of nodes may join with it (default: one)'
complete -c swctl -n "__fish_swctl_using_subcommand create; and __fish_seen_subcommand_from token" -s h -l help -d 'Print help'
complete -c swctl -n "__fish_swctl_using_subcommand create; and __fish_seen_subcommand_from help" -f -a "service" -d 'Create a Service of the given type'
complete -c swctl -n "__fish_swctl_using_subcommand create; and __fish_seen_subcommand_from help" -f -a "namespace" -d 'Create a Namespace'
complete -c swctl -n "__fish_swctl_using_subcommand create; and __fish_seen_subcommand_from help" -f -a "user" -d 'Issue a user\'s client certificate and write their credentials file'
complete -c swctl -n "__fish_swctl_using_subcommand create; and __fish_seen_subcommand_from help" -f -a "token" -d 'Make a join token for a node; prints it, then the agent command'
complete -c swctl -n "__fish_swctl_using_subcommand create; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c swctl -n "__fish_swctl_using_subcommand expose" -l port -d 'The Service port' -r
complete -c swctl -n "__fish_swctl_using_subcommand expose" -l target-port -d 'The port (number or name) the backends listen on; defaults to --port' -r
complete -c swctl -n "__fish_swctl_using_subcommand expose" -l type -d 'ClusterIP, NodePort, LoadBalancer' -r
complete -c swctl -n "__fish_swctl_using_subcommand expose" -l name -d 'Name of the Service (defaults to the exposed object\'s name)' -r
complete -c swctl -n "__fish_swctl_using_subcommand expose" -l protocol -r
complete -c swctl -n "__fish_swctl_using_subcommand expose" -l port-name -d 'Name of the port' -r
complete -c swctl -n "__fish_swctl_using_subcommand expose" -l cluster-ip -d 'ClusterIP to ask for, or None for headless' -r
complete -c swctl -n "__fish_swctl_using_subcommand expose" -l external-ip -d 'External IP to add to the Service (repeatable)' -r
complete -c swctl -n "__fish_swctl_using_subcommand expose" -l server -d 'Control plane address (overrides the credentials file\'s): https://HOST:PORT, unix:///PATH, or http://HOST:PORT for a control plane started with --insecure; several, comma-separated, are tried in turn' -r
complete -c swctl -n "__fish_swctl_using_subcommand expose" -l config -d 'Credentials file (kubeconfig-shaped; the control plane writes <data-dir>/admin.conf). Default: $SWITCHYARD_CONFIG, else ~/.switchyard/config' -r -F
complete -c swctl -n "__fish_swctl_using_subcommand expose" -s n -l namespace -d 'Namespace of the request' -r
complete -c swctl -n "__fish_swctl_using_subcommand expose" -s h -l help -d 'Print help'
complete -c swctl -n "__fish_swctl_using_subcommand port-forward" -l address -d 'Addresses to listen on (comma-separated IPs or localhost)' -r
complete -c swctl -n "__fish_swctl_using_subcommand port-forward" -l server -d 'Control plane address (overrides the credentials file\'s): https://HOST:PORT, unix:///PATH, or http://HOST:PORT for a control plane started with --insecure; several, comma-separated, are tried in turn' -r
complete -c swctl -n "__fish_swctl_using_subcommand port-forward" -l config -d 'Credentials file (kubeconfig-shaped; the control plane writes <data-dir>/admin.conf). Default: $SWITCHYARD_CONFIG, else ~/.switchyard/config' -r -F
complete -c swctl -n "__fish_swctl_using_subcommand port-forward" -s n -l namespace -d 'Namespace of the request' -r
complete -c swctl -n "__fish_swctl_using_subcommand port-forward" -s h -l help -d 'Print help'
complete -c swctl -n "__fish_swctl_using_subcommand env" -l server -d 'Control plane address (overrides the credentials file\'s): https://HOST:PORT, unix:///PATH, or http://HOST:PORT for a control plane started with --insecure; several, comma-separated, are tried in turn' -r
complete -c swctl -n "__fish_swctl_using_subcommand env" -l config -d 'Credentials file (kubeconfig-shaped; the control plane writes <data-dir>/admin.conf). Default: $SWITCHYARD_CONFIG, else ~/.switchyard/config' -r -F
complete -c swctl -n "__fish_swctl_using_subcommand env" -s n -l namespace -d 'Namespace of the request' -r
complete -c swctl -n "__fish_swctl_using_subcommand env" -l export -d 'Print `export NAME=\'value\'` lines: `eval "$(swctl env --export POD)"`'
complete -c swctl -n "__fish_swctl_using_subcommand env" -s h -l help -d 'Print help'
complete -c swctl -n "__fish_swctl_using_subcommand config; and not __fish_seen_subcommand_from kubeconfig help" -l server -d 'Control plane address (overrides the credentials file\'s): https://HOST:PORT, unix:///PATH, or http://HOST:PORT for a control plane started with --insecure; several, comma-separated, are tried in turn' -r
complete -c swctl -n "__fish_swctl_using_subcommand config; and not __fish_seen_subcommand_from kubeconfig help" -l config -d 'Credentials file (kubeconfig-shaped; the control plane writes <data-dir>/admin.conf). Default: $SWITCHYARD_CONFIG, else ~/.switchyard/config' -r -F
complete -c swctl -n "__fish_swctl_using_subcommand config; and not __fish_seen_subcommand_from kubeconfig help" -s n -l namespace -d 'Namespace of the request' -r
complete -c swctl -n "__fish_swctl_using_subcommand config; and not __fish_seen_subcommand_from kubeconfig help" -s h -l help -d 'Print help'
complete -c swctl -n "__fish_swctl_using_subcommand config; and not __fish_seen_subcommand_from kubeconfig help" -f -a "kubeconfig" -d 'Print (or write with -o) a kubeconfig for the current credentials and server: `kubectl --kubeconfig FILE get svc` then talks to this control plane'
complete -c swctl -n "__fish_swctl_using_subcommand config; and not __fish_seen_subcommand_from kubeconfig help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c swctl -n "__fish_swctl_using_subcommand config; and __fish_seen_subcommand_from kubeconfig" -s o -l output -d 'Where to write it (mode 0600: it holds a private key); stdout when omitted' -r -F
complete -c swctl -n "__fish_swctl_using_subcommand config; and __fish_seen_subcommand_from kubeconfig" -l server -d 'Control plane address (overrides the credentials file\'s): https://HOST:PORT, unix:///PATH, or http://HOST:PORT for a control plane started with --insecure; several, comma-separated, are tried in turn' -r
complete -c swctl -n "__fish_swctl_using_subcommand config; and __fish_seen_subcommand_from kubeconfig" -l config -d 'Credentials file (kubeconfig-shaped; the control plane writes <data-dir>/admin.conf). Default: $SWITCHYARD_CONFIG, else ~/.switchyard/config' -r -F
complete -c swctl -n "__fish_swctl_using_subcommand config; and __fish_seen_subcommand_from kubeconfig" -s n -l namespace -d 'Namespace of the request' -r
complete -c swctl -n "__fish_swctl_using_subcommand config; and __fish_seen_subcommand_from kubeconfig" -s h -l help -d 'Print help'
complete -c swctl -n "__fish_swctl_using_subcommand config; and __fish_seen_subcommand_from help" -f -a "kubeconfig" -d 'Print (or write with -o) a kubeconfig for the current credentials and server: `kubectl --kubeconfig FILE get svc` then talks to this control plane'
complete -c swctl -n "__fish_swctl_using_subcommand config; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c swctl -n "__fish_swctl_using_subcommand completion" -l server -d 'Control plane address (overrides the credentials file\'s): https://HOST:PORT, unix:///PATH, or http://HOST:PORT for a control plane started with --insecure; several, comma-separated, are tried in turn' -r
complete -c swctl -n "__fish_swctl_using_subcommand completion" -l config -d 'Credentials file (kubeconfig-shaped; the control plane writes <data-dir>/admin.conf). Default: $SWITCHYARD_CONFIG, else ~/.switchyard/config' -r -F
complete -c swctl -n "__fish_swctl_using_subcommand completion" -s n -l namespace -d 'Namespace of the request' -r
complete -c swctl -n "__fish_swctl_using_subcommand completion" -s h -l help -d 'Print help'
complete -c swctl -n "__fish_swctl_using_subcommand help; and not __fish_seen_subcommand_from apply get describe delete create expose port-forward env config completion help" -f -a "apply" -d 'Create or update objects from manifests (YAML or JSON; a file, a directory or - for stdin)'
complete -c swctl -n "__fish_swctl_using_subcommand help; and not __fish_seen_subcommand_from apply get describe delete create expose port-forward env config completion help" -f -a "get" -d 'List objects: `swctl get service,endpoints frontend-svc`'
complete -c swctl -n "__fish_swctl_using_subcommand help; and not __fish_seen_subcommand_from apply get describe delete create expose port-forward env config completion help" -f -a "describe" -d 'Show one object in detail'
complete -c swctl -n "__fish_swctl_using_subcommand help; and not __fish_seen_subcommand_from apply get describe delete create expose port-forward env config completion help" -f -a "delete" -d 'Delete objects by kind and name, or those in manifests'
complete -c swctl -n "__fish_swctl_using_subcommand help; and not __fish_seen_subcommand_from apply get describe delete create expose port-forward env config completion help" -f -a "create" -d 'Create a Service or Namespace from flags'
complete -c swctl -n "__fish_swctl_using_subcommand help; and not __fish_seen_subcommand_from apply get describe delete create expose port-forward env config completion help" -f -a "expose" -d 'Expose a Deployment or Pod as a new Service'
complete -c swctl -n "__fish_swctl_using_subcommand help; and not __fish_seen_subcommand_from apply get describe delete create expose port-forward env config completion help" -f -a "port-forward" -d 'Forward local ports to a pod, through the control plane: `swctl port-forward svc/x 8080:80`'
complete -c swctl -n "__fish_swctl_using_subcommand help; and not __fish_seen_subcommand_from apply get describe delete create expose port-forward env config completion help" -f -a "env" -d 'Print the Service environment variables a pod gets (`--export` for `eval`)'
complete -c swctl -n "__fish_swctl_using_subcommand help; and not __fish_seen_subcommand_from apply get describe delete create expose port-forward env config completion help" -f -a "config" -d 'Credentials for other tools: `swctl config kubeconfig` for kubectl and every Kubernetes client library'
complete -c swctl -n "__fish_swctl_using_subcommand help; and not __fish_seen_subcommand_from apply get describe delete create expose port-forward env config completion help" -f -a "completion" -d 'Print a shell completion script'
complete -c swctl -n "__fish_swctl_using_subcommand help; and not __fish_seen_subcommand_from apply get describe delete create expose port-forward env config completion help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c swctl -n "__fish_swctl_using_subcommand help; and __fish_seen_subcommand_from create" -f -a "service" -d 'Create a Service of the given type'
complete -c swctl -n "__fish_swctl_using_subcommand help; and __fish_seen_subcommand_from create" -f -a "namespace" -d 'Create a Namespace'
complete -c swctl -n "__fish_swctl_using_subcommand help; and __fish_seen_subcommand_from create" -f -a "user" -d 'Issue a user\'s client certificate and write their credentials file'
complete -c swctl -n "__fish_swctl_using_subcommand help; and __fish_seen_subcommand_from create" -f -a "token" -d 'Make a join token for a node; prints it, then the agent command'
complete -c swctl -n "__fish_swctl_using_subcommand help; and __fish_seen_subcommand_from config" -f -a "kubeconfig" -d 'Print (or write with -o) a kubeconfig for the current credentials and server: `kubectl --kubeconfig FILE get svc` then talks to this control plane'
