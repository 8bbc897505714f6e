# Sourced by the shared-cache tests: a real nginx with WebDAV on loopback, as a team's cache.
#   nginx_start DIR    starts it; sets NGINX_PID, NGINX_PORT, NGINX_ROOT (where entries land)
#   nginx_stop         stops it
# Fails (returns 1 with a message) when nginx is not installed: the test setup installs it
# (scripts/install-deps.sh).
nginx_start() {
  local dir=$1
  local bin=${KG_NGINX:-/usr/sbin/nginx}
  if [[ ! -x $bin ]]; then
    echo "nginx is not installed ($bin): scripts/install-deps.sh installs it (Debian package nginx)" >&2
    return 1
  fi
  mkdir -p "$dir"/{data,logs,tmp}
  NGINX_ROOT=$dir/data
  NGINX_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  local user_line=""
  [[ $(id -u) -eq 0 ]] && user_line="user root;"
  cat >"$dir/nginx.conf" <<CONF
$user_line
worker_processes 2;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections 256; }
http {
  access_log $dir/logs/access.log;
  client_body_temp_path $dir/tmp;
  proxy_temp_path $dir/tmp;
  fastcgi_temp_path $dir/tmp;
  uwsgi_temp_path $dir/tmp;
  scgi_temp_path $dir/tmp;
  server {
    listen 127.0.0.1:$NGINX_PORT;
    location / {
      root $dir/data;
      dav_methods PUT DELETE;
      create_full_put_path on;
      dav_access user:rw group:r all:r;
      client_max_body_size 100m;
    }
  }
}
CONF
  "$bin" -p "$dir" -c "$dir/nginx.conf" -g 'daemon off;' >"$dir/logs/stdout.log" 2>&1 &
  NGINX_PID=$!
  for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$NGINX_PORT") 2>/dev/null; then
      return 0
    fi
    sleep 0.05
  done
  echo "nginx did not start: $(cat "$dir/logs/error.log" "$dir/logs/stdout.log" 2>/dev/null | tail -5)" >&2
  return 1
}

nginx_stop() {
  [[ -n ${NGINX_PID:-} ]] || return 0
  kill -CONT "$NGINX_PID" 2>/dev/null
  kill -QUIT "$NGINX_PID" 2>/dev/null
  for _ in $(seq 50); do kill -0 "$NGINX_PID" 2>/dev/null || break; sleep 0.05; done
  kill -KILL "$NGINX_PID" 2>/dev/null
  pkill -KILL -f "nginx.*-p ${NGINX_ROOT%/data}" 2>/dev/null
  NGINX_PID=
}
