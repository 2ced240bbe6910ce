# Perl IPC::Msg: send, receive by type, stat, set, a blocked receiver, removal.
use strict;
use warnings;
use IPC::Msg;
use IPC::SysV qw(IPC_PRIVATE IPC_NOWAIT MSG_NOERROR S_IRUSR S_IWUSR);

$| = 1;
my $q = IPC::Msg->new(IPC_PRIVATE, S_IRUSR | S_IWUSR) or die "new: $!";
$q->snd(2, "two") or die "snd: $!";
$q->snd(1, "one") or die "snd: $!";
$q->snd(2, "deux") or die "snd: $!";
my $st = $q->stat;
print "qnum ", $st->qnum, " qbytes ", $st->qbytes, " mode ", sprintf("%o", $st->mode & 0777), "\n";
my $buf;
my $t = $q->rcv($buf, 100, 1);
print "type $t '$buf'\n";
$t = $q->rcv($buf, 2, 0, MSG_NOERROR);
print "type $t '$buf'\n";
$t = $q->rcv($buf, 2);
print defined $t ? "type $t '$buf'" : "too big: $!", "\n";
$t = $q->rcv($buf, 100);
print "type $t '$buf'\n";
$t = $q->rcv($buf, 100, 0, IPC_NOWAIT);
print defined $t ? "got '$buf'" : "empty: $!", "\n";

$q->set(qbytes => 10) or die "set: $!";
print "qbytes ", $q->stat->qbytes, "\n";
print $q->snd(1, "x" x 11, IPC_NOWAIT) ? "sent" : "full: $!", "\n";

my $pid = fork // die "fork: $!";
if ($pid == 0) {
    my $got;
    my $type = $q->rcv($got, 100, 5);
    print "child: type $type '$got'\n";
    exit 0;
}
for (1 .. 5000) {
    open my $f, '<', "/proc/$pid/stat" or die;
    my $s = <$f>;
    last if $s =~ /\) S /;
    select(undef, undef, undef, 0.001);
}
$q->snd(5, "hi child") or die "snd: $!";
waitpid($pid, 0);
print "after: qnum ", $q->stat->qnum, " lrpid is the child ", ($q->stat->lrpid == $pid ? "yes" : "no"), "\n";
$q->remove or die "remove: $!";
print $q->snd(1, "a") ? "sent" : "removed: $!", "\n";
