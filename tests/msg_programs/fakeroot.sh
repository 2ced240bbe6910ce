# Run by fakeroot-sysv as nobody: every chown and stat is a request to faked and an answer,
# both by message queue.
set -e
i=1
while [ $i -le 200 ]; do
    : > f$i
    chown $i:$((i % 7)) f$i
    i=$((i + 1))
done
mkdir d
chown 0:0 d
chmod 4755 f5
ls -ln | awk 'NR > 1 { n++; u += $3; g += $4 } END { print n " entries, uids " u ", gids " g }'
stat -c '%u:%g %a %n' f1 f5 f200 d
rm f3
ls | wc -l
