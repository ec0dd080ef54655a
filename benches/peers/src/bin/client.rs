//! `client <stack> <port> <requests>`: warms up (token cached, `IN_FLIGHT`
//! connections open), then sends `<requests>` GETs, `IN_FLIGHT` in flight,
//! on a current-thread runtime. Run under callgrind by `measure.sh`.

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, stack, port, n] = &args[..] else {
        eprintln!("usage: client <stack> <port> <requests>");
        std::process::exit(2);
    };
    let n: usize = n.parse().expect("a request count");
    let origin = format!("http://127.0.0.1:{port}");
    let url = format!("{origin}/videos");
    let bytes = peers::runtime().block_on(async {
        let client = peers::Client::new(stack, &origin).await;
        client.warm_up(&url).await;
        client.drive(&url, n).await
    });
    assert!(n == 0 || bytes > 0);
    println!("{stack}: {n} requests, {bytes} body bytes");
}
