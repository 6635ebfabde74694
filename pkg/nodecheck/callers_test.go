package nodecheck

import "testing"

func TestDockerCall(t *testing.T) {
	tests := []struct {
		line string
		want bool
	}{
		{"docker ps", true},
		{"0 3 * * * root docker system prune -af", true},
		{"ExecStart=/usr/bin/docker run --rm x", true},
		{"if docker pull \"$1\"; then echo ok; fi", true},
		{"out=$(docker inspect x)", true},
		{"docker-compose -f /srv/app.yml up -d", true},
		{"curl --unix-socket /var/run/docker.sock http://x/containers/json", true},
		{"systemctl restart docker", true},
		{"service docker start", true},
		{"systemctl restart docker.service", true},
		{"sudo docker", true},
		{"echo dockerfile", false},
		{"/usr/local/bin/node_exporter", false},
		{"mydocker ps", false},
		{"cp Dockerfile /tmp", false},
		{"systemctl restart containerd", false},
	}
	for _, tt := range tests {
		if got := dockerCall.MatchString(tt.line); got != tt.want {
			t.Errorf("dockerCall(%q) = %v, want %v", tt.line, got, tt.want)
		}
	}
}
