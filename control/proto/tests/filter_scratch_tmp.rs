#[test]
fn probe() {
    let n: usize = std::env::var("N").unwrap().parse().unwrap();
    let kb: usize = std::env::var("KB").unwrap().parse().unwrap();
    let text = format!("{}1{}", "(".repeat(n), ")".repeat(n));
    let r = std::thread::Builder::new().stack_size(kb << 10).spawn(move || sttp_proto::filter::parse(&text).is_err()).unwrap().join();
    println!("RESULT {:?}", r);
}
