.PHONY: test vet build demo

# make test is what CI runs (.ci/run): vet, then every test with the race
# detector, then the proxy's tests again on net/http alone (the path of
# fast_path: off and of TLS backends).
test: vet
	go test -race -count=1 -timeout 15m ./...
	BANYAN_TEST_FAST_PATH=off go test -race -count=1 -timeout 5m ./proxy/

vet:
	go vet ./...

build:
	go build -o bin/banyan ./cmd/banyan

demo:
	go run ./cmd/banyan demo
