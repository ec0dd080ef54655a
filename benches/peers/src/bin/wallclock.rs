//! `wallclock <port> [rounds] [requests]`: every stack side by side in one
//! process, against the server on `<port>`. Each round times `<requests>`
//! GETs per stack (`IN_FLIGHT` in flight), in an order that rotates from
//! round to round; a library's ratio in a round is its time over its static
//! stack's time in that same round. Prints the median ratio and the spread
//! over the rounds.

use std::time::{Duration, Instant};

use peers::{base_of, Client, STACKS};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (port, rounds, requests) = match &args[1..] {
        [port] => (port.as_str(), 30, 2_000),
        [port, rounds] => (port.as_str(), rounds.parse().expect("rounds"), 2_000),
        [port, rounds, requests] => (
            port.as_str(),
            rounds.parse().expect("rounds"),
            requests.parse().expect("requests"),
        ),
        _ => {
            eprintln!("usage: wallclock <port> [rounds] [requests]");
            std::process::exit(2);
        }
    };
    let origin = format!("http://127.0.0.1:{port}");
    let url = format!("{origin}/videos");
    let times = peers::runtime().block_on(async {
        let mut clients = Vec::new();
        for stack in STACKS {
            let client = Client::new(stack, &origin).await;
            client.warm_up(&url).await;
            clients.push(client);
        }
        let mut times = vec![Vec::<Duration>::new(); STACKS.len()];
        for round in 0..rounds {
            for k in 0..STACKS.len() {
                let i = (round + k) % STACKS.len();
                let started = Instant::now();
                clients[i].drive(&url, requests).await;
                times[i].push(started.elapsed());
            }
        }
        times
    });

    println!(
        "{rounds} rounds of {requests} requests, {} in flight",
        peers::IN_FLIGHT
    );
    for (i, stack) in STACKS.iter().enumerate() {
        let mut per: Vec<f64> = times[i]
            .iter()
            .map(|t| t.as_secs_f64() * 1e6 / requests as f64)
            .collect();
        per.sort_by(f64::total_cmp);
        println!("{stack:<14} median {:.2} µs/request", median(&per));
    }
    println!("\nratio to its own static stack, per round: median [p10 .. p90] (min .. max)");
    for (i, stack) in STACKS.iter().enumerate() {
        let Some(base) = base_of(stack) else { continue };
        let b = STACKS
            .iter()
            .position(|s| *s == base)
            .expect("a base stack");
        let mut ratios: Vec<f64> = times[i]
            .iter()
            .zip(&times[b])
            .map(|(t, base)| t.as_secs_f64() / base.as_secs_f64())
            .collect();
        ratios.sort_by(f64::total_cmp);
        let at = |q: f64| ratios[((ratios.len() - 1) as f64 * q).round() as usize];
        println!(
            "{stack:<14} {:.3} [{:.3} .. {:.3}] ({:.3} .. {:.3}) over {base}",
            median(&ratios),
            at(0.1),
            at(0.9),
            ratios[0],
            ratios[ratios.len() - 1],
        );
    }
}

fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}
