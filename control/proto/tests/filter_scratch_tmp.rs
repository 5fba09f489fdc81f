#[test]
fn probe() {
    let n: usize = std::env::var("N").unwrap().parse().unwrap();
    let kb: usize = std::env::var("KB").unwrap().parse().unwrap();
    for text in [
        format!("{}1{}", "(".repeat(n), ")".repeat(n)),
        format!("{}1{}", "Abs(".repeat(n), ")".repeat(n)),
        format!("{}x", "NOT ".repeat(n)),
        format!("{}1{}", "-(".repeat(n), ")".repeat(n)),
        format!("{}1{}", "x IN (".repeat(n), ")".repeat(n)),
        format!("{}1{}", "x LIKE (".repeat(n), ")".repeat(n)),
    ] {
    let r = std::thread::Builder::new().stack_size(kb << 10).spawn(move || sttp_proto::filter::parse(&text).map_err(|e| e.to_string())).unwrap().join();
    println!("RESULT {:?}", r.map(|x| x.err()));
    }
}
