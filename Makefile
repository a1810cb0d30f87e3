.PHONY: test vet build demo

# make test is what CI runs (.ci/run): vet, then every test with the race
# detector (the proxy's fast path on its default engine: io_uring where
# the kernel runs it and there are two CPUs or more, else goroutines;
# under CI=true a fall-back to goroutines fails), then the proxy's tests
# again on the goroutines engine (fast_path: goroutines) and on net/http
# alone (the path of fast_path: off and of TLS backends).
test: vet
	go test -race -count=1 -timeout 15m ./...
	BANYAN_TEST_ENGINE=goroutines go test -race -count=1 -timeout 5m ./proxy/
	BANYAN_TEST_FAST_PATH=off go test -race -count=1 -timeout 5m ./proxy/

vet:
	go vet ./...

build:
	go build -o bin/banyan ./cmd/banyan

demo:
	go run ./cmd/banyan demo
