#!/usr/bin/env bash
# local-cluster.sh: a real ClickHouse cluster on this machine, for trying
# cluster mode and for the cluster test (cmd/arubug/cluster_test.go).
#
#   deploy/clickhouse/local-cluster.sh [--layout 2] [--cluster NAME] DIR
#
# Starts, on loopback only and with everything under DIR:
#   - ZooKeeper from Debian's `zookeeper` package, standalone, with its own
#     zoo.cfg and data directory (the system service is left alone);
#   - one clickhouse-server per replica, configured the way deploy/clickhouse
#     describes (config.d/remote_servers.xml, zookeeper.xml, macros.xml).
# --layout lists the replicas of each shard: "2" (default) is one shard of two
# replicas, "2,1" two shards of which the first has two replicas, "2,2" the
# 2-shard x 2-replica cluster of the examples. Nodes are named s<shard>r<replica>.
#
# It prints what a client needs, one "key value" line each, then "ready":
#   cluster arubug_local
#   zookeeper 127.0.0.1:PORT
#   node s1r1 127.0.0.1:TCP http=127.0.0.1:HTTP shard=1 replica=1 log=DIR/s1r1/log
#   dsn clickhouse://127.0.0.1:TCP1,127.0.0.1:TCP2/arubug
#   ready
# and then runs until Ctrl-C, SIGTERM or the end of its standard input, when
# it stops everything it started. Commands read from standard input, one a
# line, each answered by one line ("ok ..." or "error ..."):
#   kill NODE     SIGKILL the node's clickhouse-server (a crash)
#   stop NODE     stop it cleanly (SIGTERM)
#   start NODE    start it again on the same ports and data, wait until it answers
#   sql NODE Q    run query Q on the node with clickhouse-client (one line)
#   quit          stop everything and exit
# Every child is started with a parent-death signal, so even a SIGKILL of this
# script takes the cluster down with it.
#
# Ports are picked at random below the kernel's ephemeral port range and
# checked to be free: a restarted node must get its ports back (the other
# nodes know it by them), and outgoing connections, which take their local
# ports from the ephemeral range, could otherwise grab them while it is down.
set -euo pipefail

layout=2
cluster=arubug_local
database=arubug
while [ $# -gt 0 ]; do
	case "$1" in
	--layout) layout=${2:?--layout needs a value}; shift 2 ;;
	--cluster) cluster=${2:?--cluster needs a value}; shift 2 ;;
	--database) database=${2:?--database needs a value}; shift 2 ;;
	-h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	-*) echo "local-cluster.sh: unknown option $1" >&2; exit 2 ;;
	*) break ;;
	esac
done
if [ $# -ne 1 ]; then
	echo "usage: local-cluster.sh [--layout 2] [--cluster NAME] [--database DB] DIR" >&2
	exit 2
fi
if ! [[ $layout =~ ^[1-9](,[1-9])*$ ]]; then
	echo "local-cluster.sh: --layout must be replica counts per shard, like 2 or 2,2" >&2
	exit 2
fi
if ! [[ $cluster =~ ^[A-Za-z_][A-Za-z0-9_]*$ && $database =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]]; then
	echo "local-cluster.sh: cluster and database names must be identifiers" >&2
	exit 2
fi
mkdir -p "$1"
root=$(cd "$1" && pwd)

die() { echo "local-cluster.sh: $*" >&2; exit 1; }

# --- binaries ---------------------------------------------------------------
ch_bin=() ch_client=()
for c in clickhouse-server /usr/sbin/clickhouse-server /usr/bin/clickhouse-server /usr/local/bin/clickhouse-server; do
	if command -v "$c" >/dev/null 2>&1; then ch_bin=("$(command -v "$c")"); break; fi
done
if [ ${#ch_bin[@]} -eq 0 ] && command -v clickhouse >/dev/null 2>&1; then ch_bin=("$(command -v clickhouse)" server); fi
[ ${#ch_bin[@]} -gt 0 ] || die "clickhouse-server is not installed (apt-get install clickhouse-server clickhouse-client)"
if command -v clickhouse-client >/dev/null 2>&1; then ch_client=(clickhouse-client)
elif command -v clickhouse >/dev/null 2>&1; then ch_client=(clickhouse client); fi

zk_jar=${ZOOKEEPER_JAR:-/usr/share/java/zookeeper.jar}
[ -f "$zk_jar" ] || die "ZooKeeper is not installed ($zk_jar missing; apt-get install zookeeper)"
java=${JAVA:-$(command -v java || true)}
[ -n "$java" ] || die "java is not installed (apt-get install zookeeper installs it)"
# The package's jar names its dependencies in its manifest; slf4j-simple,
# when present, sends ZooKeeper's log to its stderr file instead of nowhere.
zk_cp=$zk_jar
[ -f /usr/share/java/slf4j-simple.jar ] && zk_cp=$zk_cp:/usr/share/java/slf4j-simple.jar

# The parent-death signal makes the kernel kill a child when this shell
# dies, however it dies.
deathsig=()
command -v setpriv >/dev/null 2>&1 && setpriv --help 2>&1 | grep -q pdeathsig && deathsig=(setpriv --pdeathsig KILL --)

# --- ports ------------------------------------------------------------------
port_lo=20000 port_hi=32000
if [ -r /proc/sys/net/ipv4/ip_local_port_range ]; then
	read -r eph_lo _ </proc/sys/net/ipv4/ip_local_port_range
	if [ "$eph_lo" -le "$port_hi" ]; then port_hi=$((eph_lo - 1)); port_lo=$((port_hi > 11024 ? port_hi - 10000 : 1024)); fi
fi
# free_port sets port (not a $(...) subshell: the ports taken so far must
# be remembered).
used_ports=" " port=""
free_port() {
	local p i
	for i in $(seq 1 500); do
		p=$((port_lo + (RANDOM * 32768 + RANDOM) % (port_hi - port_lo)))
		case "$used_ports" in *" $p "*) continue ;; esac
		# A refused connection means nothing listens there.
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			used_ports="$used_ports$p "
			port=$p
			return 0
		fi
	done
	die "no free port found between $port_lo and $port_hi"
}

xml_escape() { local s=${1//&/&amp;}; s=${s//</&lt;}; s=${s//>/&gt;}; printf '%s' "$s"; }

# --- nodes --------------------------------------------------------------------
nodes=() # names, in shard order
declare -A shard_of replica_of tcp_of http_of inter_of pid_of
IFS=, read -r -a counts <<<"$layout"
for s in "${!counts[@]}"; do
	for r in $(seq 1 "${counts[$s]}"); do
		n="s$((s + 1))r$r"
		nodes+=("$n")
		shard_of[$n]=$((s + 1)) replica_of[$n]=$r
		free_port; tcp_of[$n]=$port
		free_port; http_of[$n]=$port
		free_port; inter_of[$n]=$port
	done
done
free_port; zk_port=$port
zk_dir=$root/zookeeper

# --- ZooKeeper ----------------------------------------------------------------
write_zookeeper_config() {
	mkdir -p "$zk_dir/data" "$zk_dir/log"
	# tickTime 500 allows ClickHouse sessions as short as 1 s; the nodes ask
	# for 5 s (zookeeper.xml) so that a killed node's session, which keeps
	# its replicas marked active, expires soon after the kill.
	cat >"$zk_dir/zoo.cfg" <<-EOF
	# Generated by local-cluster.sh on every start.
	tickTime=500
	initLimit=10
	syncLimit=5
	dataDir=$zk_dir/data
	clientPortAddress=127.0.0.1
	clientPort=$zk_port
	maxClientCnxns=0
	admin.enableServer=false
	4lw.commands.whitelist=ruok,srvr,mntr
	autopurge.purgeInterval=0
	EOF
}

zk_ok() {
	local answer=""
	exec 3<>"/dev/tcp/127.0.0.1/$zk_port" || return 1
	printf ruok >&3
	read -r -t 2 answer <&3 || true
	exec 3<&- 3>&-
	[ "$answer" = imok ]
}

start_zookeeper() {
	write_zookeeper_config
	# Small heap and the client compiler: ZooKeeper has little to do here
	# and shares two cores with the tests.
	"${deathsig[@]}" "$java" -Xms32m -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
		-Dzookeeper.log.dir="$zk_dir/log" -Dorg.slf4j.simpleLogger.defaultLogLevel=info \
		-cp "$zk_cp" org.apache.zookeeper.server.ZooKeeperServerMain "$zk_dir/zoo.cfg" \
		>"$zk_dir/log/stdout.log" 2>"$zk_dir/log/stderr.log" </dev/null &
	pid_of[zookeeper]=$!
	local i
	for i in $(seq 1 300); do
		if ! running "${pid_of[zookeeper]}"; then
			tail -n 20 "$zk_dir/log/stderr.log" >&2 || true
			die "zookeeper exited during startup (logs in $zk_dir/log)"
		fi
		if zk_ok 2>/dev/null; then return 0; fi
		sleep 0.1
	done
	die "zookeeper did not answer within 30s (logs in $zk_dir/log)"
}

# --- ClickHouse -----------------------------------------------------------------
write_node_config() {
	local n=$1 d=$root/$1
	local e
	e=$(xml_escape "$d")
	mkdir -p "$d/config/config.d" "$d/data" "$d/tmp" "$d/user_files" "$d/format_schemas" "$d/log"
	# The base configuration is localch's (internal/clickhouse/localch/config.go):
	# only keys that 18.16 and current releases both understand.
	cat >"$d/config/config.xml" <<-EOF
	<?xml version="1.0"?>
	<!-- Generated by local-cluster.sh on every start. -->
	<clickhouse>
	    <logger>
	        <level>information</level>
	        <log>$e/log/clickhouse-server.log</log>
	        <errorlog>$e/log/clickhouse-server.err.log</errorlog>
	        <size>20M</size>
	        <count>2</count>
	    </logger>
	    <display_name>$n</display_name>
	    <listen_host>127.0.0.1</listen_host>
	    <tcp_port>${tcp_of[$n]}</tcp_port>
	    <http_port>${http_of[$n]}</http_port>
	    <!-- Replicas fetch parts from each other over this port. -->
	    <interserver_http_port>${inter_of[$n]}</interserver_http_port>
	    <interserver_http_host>127.0.0.1</interserver_http_host>
	    <max_connections>1024</max_connections>
	    <keep_alive_timeout>3</keep_alive_timeout>
	    <max_concurrent_queries>100</max_concurrent_queries>
	    <mark_cache_size>268435456</mark_cache_size>
	    <uncompressed_cache_size>268435456</uncompressed_cache_size>
	    <mlock_executable>false</mlock_executable>
	    <path>$e/data/</path>
	    <tmp_path>$e/tmp/</tmp_path>
	    <user_files_path>$e/user_files/</user_files_path>
	    <format_schema_path>$e/format_schemas/</format_schema_path>
	    <users_config>$e/config/users.xml</users_config>
	    <default_profile>default</default_profile>
	    <default_database>default</default_database>
	</clickhouse>
	EOF
	cat >"$d/config/users.xml" <<-'EOF'
	<?xml version="1.0"?>
	<!-- Generated by local-cluster.sh on every start. -->
	<clickhouse>
	    <profiles>
	        <default>
	            <max_memory_usage>2000000000</max_memory_usage>
	            <poll_interval>1</poll_interval>
	            <!-- As deploy/clickhouse/users.d/arubug.xml: Arubug's IN subqueries
	                 on Distributed tables (18.16 takes this only from a profile). -->
	            <distributed_product_mode>global</distributed_product_mode>
	        </default>
	    </profiles>
	    <users>
	        <default>
	            <password></password>
	            <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
	            <profile>default</profile>
	            <quota>default</quota>
	        </default>
	    </users>
	    <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors>
	        <result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval></default></quotas>
	</clickhouse>
	EOF
	# The cluster part, in the shape of deploy/clickhouse/config.d.
	{
		echo '<?xml version="1.0"?>'
		echo '<!-- Generated by local-cluster.sh on every start. -->'
		echo '<clickhouse>'
		echo '    <remote_servers>'
		echo "        <$cluster>"
		local s m
		for s in $(seq 1 ${#counts[@]}); do
			echo '            <shard>'
			echo '                <internal_replication>true</internal_replication>'
			for m in "${nodes[@]}"; do
				[ "${shard_of[$m]}" = "$s" ] || continue
				echo "                <replica><host>127.0.0.1</host><port>${tcp_of[$m]}</port><user>default</user></replica>"
			done
			echo '            </shard>'
		done
		echo "        </$cluster>"
		echo '    </remote_servers>'
		echo '</clickhouse>'
	} >"$d/config/config.d/remote_servers.xml"
	cat >"$d/config/config.d/zookeeper.xml" <<-EOF
	<?xml version="1.0"?>
	<!-- Generated by local-cluster.sh on every start. -->
	<clickhouse>
	    <zookeeper>
	        <node><host>127.0.0.1</host><port>$zk_port</port></node>
	        <session_timeout_ms>5000</session_timeout_ms>
	    </zookeeper>
	    <distributed_ddl>
	        <path>/clickhouse/task_queue/ddl</path>
	    </distributed_ddl>
	</clickhouse>
	EOF
	cat >"$d/config/config.d/macros.xml" <<-EOF
	<?xml version="1.0"?>
	<!-- Generated by local-cluster.sh on every start. -->
	<clickhouse>
	    <macros>
	        <shard>${shard_of[$n]}</shard>
	        <replica>$n</replica>
	    </macros>
	</clickhouse>
	EOF
}

node_ok() {
	local n=$1 answer=""
	exec 3<>"/dev/tcp/127.0.0.1/${http_of[$n]}" || return 1
	printf 'GET /ping HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
	answer=$(timeout 2 cat <&3 || true)
	exec 3<&- 3>&-
	[[ $answer == *"Ok."* ]]
}

start_node() {
	local n=$1 d=$root/$1 i
	if [ -n "${pid_of[$n]:-}" ] && running "${pid_of[$n]}"; then
		echo "$n is already running"
		return 0
	fi
	write_node_config "$n"
	"${deathsig[@]}" "${ch_bin[@]}" --config-file="$d/config/config.xml" \
		>>"$d/log/stdout.log" 2>>"$d/log/stderr.log" </dev/null &
	pid_of[$n]=$!
	for i in $(seq 1 600); do
		if ! running "${pid_of[$n]}"; then
			tail -n 20 "$d/log/clickhouse-server.err.log" "$d/log/stderr.log" >&2 2>/dev/null || true
			pid_of[$n]=""
			echo "$n exited during startup (logs in $d/log)"
			return 1
		fi
		if node_ok "$n" 2>/dev/null; then return 0; fi
		sleep 0.1
	done
	echo "$n did not answer within 60s (logs in $d/log)"
	return 1
}

# running PID: whether the process is alive. kill -0 is not enough: an
# exited child stays a zombie until it is waited for.
running() {
	local st
	st=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	st=${st##*) }
	[ "${st%% *}" != Z ]
}

# signal_and_wait NODE SIGNAL SECONDS: signals the process and waits for it
# to go; a process still there when the time is up is killed.
signal_and_wait() {
	local n=$1 sig=$2 secs=$3 pid=${pid_of[$1]:-} i
	[ -n "$pid" ] || return 0
	kill "-$sig" "$pid" 2>/dev/null || true
	for i in $(seq 1 $((secs * 10))); do
		running "$pid" || break
		sleep 0.1
	done
	if running "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
	wait "$pid" 2>/dev/null || true
	pid_of[$n]=""
}

stopped=0
stop_all() {
	[ "$stopped" = 1 ] && return 0
	stopped=1
	local n
	for n in "${nodes[@]}"; do
		[ -n "${pid_of[$n]:-}" ] && kill -TERM "${pid_of[$n]}" 2>/dev/null || true
	done
	for n in "${nodes[@]}"; do signal_and_wait "$n" TERM 20; done
	signal_and_wait zookeeper TERM 10
}
trap stop_all EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

start_zookeeper
for n in "${nodes[@]}"; do
	start_node "$n" >&2 || die "could not start $n"
done

echo "cluster $cluster"
echo "zookeeper 127.0.0.1:$zk_port"
hosts=()
for n in "${nodes[@]}"; do
	echo "node $n 127.0.0.1:${tcp_of[$n]} http=127.0.0.1:${http_of[$n]} shard=${shard_of[$n]} replica=${replica_of[$n]} log=$root/$n/log"
	hosts+=("127.0.0.1:${tcp_of[$n]}")
done
echo "dsn clickhouse://$(IFS=,; echo "${hosts[*]}")/$database"
echo ready

known() { [ -n "${1:-}" ] && [ -n "${shard_of[$1]:-}" ]; }
# A read interrupted by a signal returns non-zero too; the traps then exit.
while read -r cmd arg rest; do
	case "$cmd" in
	"") ;;
	kill)
		if known "$arg"; then signal_and_wait "$arg" KILL 10; echo "ok killed $arg"; else echo "error unknown node ${arg:-}"; fi ;;
	stop)
		if known "$arg"; then signal_and_wait "$arg" TERM 20; echo "ok stopped $arg"; else echo "error unknown node ${arg:-}"; fi ;;
	start)
		if ! known "$arg"; then echo "error unknown node ${arg:-}"
		# Not in a $(...) subshell: the node must be this shell's child.
		elif start_node "$arg" >"$root/start.msg" 2>&1; then echo "ok started $arg"
		else msg=$(<"$root/start.msg"); echo "error ${msg//$'\n'/ }"; fi ;;
	sql)
		if ! known "$arg"; then echo "error unknown node ${arg:-}"
		elif [ ${#ch_client[@]} -eq 0 ]; then echo "error clickhouse-client is not installed"
		elif out=$("${ch_client[@]}" --host 127.0.0.1 --port "${tcp_of[$arg]}" --query "$rest" 2>&1); then echo "ok ${out//$'\n'/ | }"
		else echo "error ${out//$'\n'/ }"; fi ;;
	quit|exit) break ;;
	*) echo "error unknown command $cmd (kill|stop|start|sql NODE, quit)" ;;
	esac
done
stop_all
echo stopped
