.PHONY: test vet build demo

# make test is what CI runs (.ci/run): vet, then every test with the race
# detector, then the proxy's tests again with the fast path on io_uring
# (fast_path: io_uring; on goroutines where the kernel refuses it, except
# under CI=true, where that fails) and on net/http alone (the path of
# fast_path: off and of TLS backends).
test: vet
	go test -race -count=1 -timeout 15m ./...
	BANYAN_TEST_ENGINE=io_uring go test -race -count=1 -timeout 5m ./proxy/
	BANYAN_TEST_FAST_PATH=off go test -race -count=1 -timeout 5m ./proxy/

vet:
	go vet ./...

build:
	go build -o bin/banyan ./cmd/banyan

demo:
	go run ./cmd/banyan demo
