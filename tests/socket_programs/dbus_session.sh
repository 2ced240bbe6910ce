#!/bin/sh
# A private D-Bus session bus (dbus-daemon on a unix socket in DIR), asked by dbus-send and
# by a raw client (dbus_ping.py: EXTERNAL authentication, Hello, 300 Pings). Usage: DIR.
set -e
d=$1
cat > "$d/session.conf" <<CONF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig><type>session</type><listen>unix:path=$d/bus</listen><auth>EXTERNAL</auth>
<policy context="default"><allow send_destination="*" eavesdrop="true"/><allow eavesdrop="true"/>
<allow own="*"/></policy></busconfig>
CONF
dbus-daemon --config-file="$d/session.conf" --fork --print-pid=3 3>"$d/pid"
export DBUS_SESSION_BUS_ADDRESS="unix:path=$d/bus"
dbus-send --session --print-reply --dest=org.freedesktop.DBus /org/freedesktop/DBus \
    org.freedesktop.DBus.ListNames | grep -c 'string "'
dbus-send --session --print-reply --dest=org.freedesktop.DBus /org/freedesktop/DBus \
    org.freedesktop.DBus.NameHasOwner string:org.freedesktop.DBus | grep boolean
python3 "$(dirname "$0")/dbus_ping.py" "$d/bus" 300
kill "$(cat "$d/pid")"
echo done
