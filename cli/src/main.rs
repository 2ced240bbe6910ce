mod ipcrm;
mod ipcs;

fn main() {}
