# Perl's IPC::Semaphore (perl core): usage perl ipc_semaphore.pl KEY.
#
# Creates a set of three semaphores with KEY, sets and reads them all, checks that an operation
# list is all-or-nothing, lets a forked child change all three with SEM_UNDO and exit (the kernel
# undoes its changes), takes a semaphore with SEM_UNDO itself, then prints
# "CHECK <semid> <pid>" and waits for a line on stdin while the test inspects the namespace
# (values 3,0,0, last operation on each by <pid>), and finally removes the set. Every other line
# printed is exact (pids are compared here, not printed).
use strict;
use warnings;
use Errno ();
use IPC::SysV qw(IPC_CREAT IPC_EXCL IPC_NOWAIT SEM_UNDO S_IRUSR S_IWUSR);
use IPC::Semaphore;

$| = 1;
my $key = shift @ARGV // die "usage: ipc_semaphore.pl KEY\n";
alarm 20;    # a hang ends the run

my $sem = IPC::Semaphore->new($key, 3, S_IRUSR | S_IWUSR | IPC_CREAT | IPC_EXCL)
    // die "semget: $!\n";
print "new set: getall ", join(",", $sem->getall), "\n";
my $again = IPC::Semaphore->new($key, 3, S_IRUSR | S_IWUSR | IPC_CREAT | IPC_EXCL);
print "second IPC_EXCL: ", (defined $again ? "created" : $!{EEXIST} ? "EEXIST" : "error $!"), "\n";
my $bigger = IPC::Semaphore->new($key, 4, 0);
print "open with nsems 4: ", (defined $bigger ? "opened" : $!{EINVAL} ? "EINVAL" : "error $!"), "\n";

$sem->setall(3, 0, 7) or die "setall: $!\n";
print "setall 3,0,7: getall ", join(",", $sem->getall), "\n";
my $st = $sem->stat;
printf "stat: nsems %d mode %o uid is euid %d\n", $st->nsems, $st->mode & 0777, $st->uid == $>;

# All or nothing: semaphore 1 is 0, so taking from 0 and 1 together fails and changes neither.
my $ok = $sem->op(0, -1, IPC_NOWAIT, 1, -1, IPC_NOWAIT);
print "take 0 and 1 without waiting: ", ($ok ? "succeeded" : $!{EAGAIN} ? "EAGAIN" : "error $!"),
    ", getall ", join(",", $sem->getall), "\n";

# A child changes all three with SEM_UNDO and exits: its changes are undone.
my $pid = fork // die "fork: $!\n";
if ($pid == 0) {
    $sem->op(0, -1, SEM_UNDO, 1, 2, SEM_UNDO, 2, -5, SEM_UNDO) or die "child op: $!\n";
    print "child after op: getall ", join(",", $sem->getall), "\n";
    exit 0;
}
waitpid($pid, 0) == $pid or die "waitpid: $!\n";
print "child exit status $?\n";
print "after the child: getall ", join(",", $sem->getall), " last pid is child ",
    ($sem->getpid(2) == $pid ? 1 : 0), "\n";

# Without SEM_UNDO a child's change stays.
$pid = fork // die "fork: $!\n";
if ($pid == 0) {
    $sem->op(1, 4, 0) or die "child op: $!\n";
    exit 0;
}
waitpid($pid, 0) == $pid or die "waitpid: $!\n";
print "after a child without SEM_UNDO: getall ", join(",", $sem->getall), "\n";
$sem->setall(3, 0, 7) or die "setall: $!\n";

# This process takes all of semaphore 2 with SEM_UNDO and holds it across the check.
$sem->op(2, -7, SEM_UNDO) or die "op: $!\n";
print "held: getall ", join(",", $sem->getall), " ncnt ", $sem->getncnt(2), " zcnt ",
    $sem->getzcnt(2), " last pid is self ", join(",", map { $sem->getpid($_) == $$ ? 1 : 0 } 0 .. 2),
    "\n";
print "CHECK ", $sem->id, " $$\n";
my $go = <STDIN>;

$sem->setval(1, 5) or die "setval: $!\n";
print "setval 1 5: getval ", $sem->getval(1), " getall ", join(",", $sem->getall), "\n";
$sem->remove or die "remove: $!\n";
print "removed\n";
my $gone = IPC::Semaphore->new($key, 3, 0);
print "open after remove: ", (defined $gone ? "opened" : $!{ENOENT} ? "ENOENT" : "error $!"), "\n";
my @stale = $sem->getall;
print "getall on the removed id: ", (@stale ? "values" : $!{EINVAL} ? "EINVAL" : "error $!"), "\n";
