pub async fn run() -> Result<(), kube::Error> {
    Ok(())
}
